// The live mesh page (issue 14) in a real browser: headless Chromium (playwright-core) against
// the photo app on real Envoy sidecars. The page lists the workloads with their SPIFFE IDs and
// sync state, the policy matrix, the CA and recent events; it follows a policy change and a
// revocation without a reload; its data needs the admin token (a one-time link or the login
// form, then an HttpOnly session cookie). A synthetic view proves a hostile name renders as text
// and measures 1,000 workloads.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { createMeshPage, findAdminEndpoint, startAdminServer, type AdminServer, type MeshView } from '../src/admin/index.js';
import { err, systemClock } from '../src/lib/index.js';
import { createMetrics, silentLogger } from '../src/observability/index.js';
import { launchBrowser, haveChromium, SCREENSHOT_DIR } from './kit/browser.js';
import { startMesh, type TestMesh } from './kit/mesh.js';
import { backend, datastore, DENY_FRONTEND_TO_BACKEND, frontend, ids, photoAppConfig, photoAppPolicy } from './kit/photo-app.js';

const shot = (name: string) => fileURLToPath(new URL(name, SCREENSHOT_DIR));

/** The verdict the page shows for a caller → callee cell. */
const verdictOf = (page: Page, from: string, to: string) =>
  page.locator(`#matrix button[data-from="${from}"][data-to="${to}"]`).getAttribute('data-verdict');

describe('the mesh page in a real browser, over the photo app on real Envoy (issue 14)', function () {
  this.timeout(120_000);
  let stateDir: string;
  let mesh: TestMesh | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let base: string;
  let token: string;

  before(async function () {
    if (!haveChromium()) this.skip(); // `make test-e2e` installs it (as root)
    stateDir = mkdtempSync(join(tmpdir(), 'meshpilot-page-state-'));
    mesh = await startMesh(
      { 'mesh.yaml': photoAppConfig(), 'policy.yaml': photoAppPolicy() },
      { apps: [frontend, backend, datastore], stateDir, adminPort: 0 },
    );
    for (const w of [frontend, backend, datastore]) await mesh.startSidecar(w);
    const ep = findAdminEndpoint(stateDir);
    assert.ok(ep, 'the server published its admin endpoint');
    base = ep.url;
    token = ep.token;
    browser = await launchBrowser();
    // The test's own predicates are strings the page evaluates; bypassing the page's CSP for them
    // also means the hostile-name test proves the rendering itself, not the CSP, keeps names inert.
    page = await browser.newPage({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
  });

  after(async () => {
    await browser?.close();
    await mesh?.stop();
    if (stateDir) rmSync(stateDir, { recursive: true, force: true });
  });

  afterEach(function () {
    mesh?.dumpIfFailed(this.currentTest);
  });

  it('signs in with the one-time link (HttpOnly, SameSite=Strict cookie), which works only once', async () => {
    const link = mesh!.mp.meshPageLink();
    assert.ok(link?.startsWith(`${base}/?login=`));
    const res = await page.goto(link!);
    assert.equal(res?.status(), 200);
    assert.equal(new URL(page.url()).search, '', 'the code leaves the address bar');
    const [cookie] = await page.context().cookies();
    assert.equal(cookie?.httpOnly, true);
    assert.equal(cookie?.sameSite, 'Strict');
    assert.ok(!cookie?.value.includes(token), 'the cookie is a session id, not the admin token');
    const again = await fetch(link!, { redirect: 'manual' });
    assert.equal(again.status, 401, 'a used code is refused');
  });

  it('refuses the data without the token, with a wrong one or a forged cookie', async () => {
    for (const path of ['/mesh/view', '/mesh/events', '/page.js']) {
      assert.equal((await fetch(base + path)).status, 401, `${path} without a token`);
      assert.equal((await fetch(base + path, { headers: { authorization: 'Bearer nope' } })).status, 401, `${path} wrong token`);
      assert.equal((await fetch(base + path, { headers: { cookie: 'meshpilot_session=forged' } })).status, 401, `${path} forged cookie`);
    }
    const form = await fetch(`${base}/login`, { method: 'POST', body: new URLSearchParams({ token: 'wrong' }), redirect: 'manual' });
    assert.equal(form.status, 401);
    assert.equal(form.headers.get('set-cookie'), null);
    const ok = await fetch(`${base}/mesh/view`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    assert.match(ok.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    const body = await ok.text();
    assert.ok(!body.includes('PRIVATE KEY') && !body.includes('BEGIN CERTIFICATE'), 'no key or certificate material in the data');
  });

  it('lists the three workloads by namespace with their SPIFFE IDs, SVID serials and SYNCED proxies', async () => {
    await page.waitForFunction("document.querySelectorAll('#workloads tr[data-workload]').length === 3", undefined, { timeout: 15_000 });
    await page.waitForFunction("document.querySelectorAll('#workloads .badge.SYNCED').length === 15", undefined, { timeout: 15_000 });
    const rows = await page.locator('#workloads tr[data-workload]').allTextContents();
    for (const id of [ids.frontend, ids.backend, ids.datastore])
      assert.ok(
        rows.some((r) => r.includes(id)),
        `${id} shown`,
      );
    const namespaces = await page.locator('#workloads tr.ns').allTextContents();
    assert.deepEqual(namespaces, ['namespace datastore-ns', 'namespace photo-ns']);
    const serial = await page.locator('tr[data-workload="photo-ns/photo-backend"] .serial').textContent();
    assert.match(serial ?? '', /^[0-9a-f]{16,}$/);
    assert.equal(await page.locator('#conn').textContent(), 'live');
  });

  it('shows photo-frontend → datastore denied and the two allowed hops, with the deciding policy and mTLS mode', async () => {
    await page.waitForSelector('#matrix button.v');
    assert.equal(await verdictOf(page, 'photo-ns/photo-frontend', 'datastore-ns/datastore'), 'deny');
    assert.equal(await verdictOf(page, 'photo-ns/photo-frontend', 'photo-ns/photo-backend'), 'allow');
    assert.equal(await verdictOf(page, 'photo-ns/photo-backend', 'datastore-ns/datastore'), 'allow');
    const cell = page.locator('#matrix button[data-from="photo-ns/photo-backend"][data-to="datastore-ns/datastore"]');
    assert.match((await cell.getAttribute('title')) ?? '', /datastore-ns\/datastore-allow-backend/);
    assert.match((await cell.textContent()) ?? '', /STRICT/);
    await cell.click();
    assert.match((await page.locator('#cell-detail').textContent()) ?? '', /datastore-ns\/datastore-allow-backend rule 0/);
  });

  it('follows a policy change that adds a DENY without a reload', async () => {
    await page.evaluate('window.notReloaded = true');
    mesh!.writeConfig('policy.yaml', `${photoAppPolicy()}---\n${DENY_FRONTEND_TO_BACKEND}`);
    await page.waitForFunction(
      `document.querySelector('#matrix button[data-from="photo-ns/photo-frontend"][data-to="photo-ns/photo-backend"]')?.getAttribute('data-verdict') === 'deny'`,
      undefined,
      { timeout: 15_000 },
    );
    assert.equal(await page.evaluate('window.notReloaded'), true, 'same document');
    const title = await page
      .locator('#matrix button[data-from="photo-ns/photo-frontend"][data-to="photo-ns/photo-backend"]')
      .getAttribute('title');
    assert.match(title ?? '', /photo-ns\/photo-backend-deny-frontend/);
    assert.match((await page.locator('#events').textContent()) ?? '', /config accepted/);
  });

  it('shows the new serial after a revocation reissues the holder, and the revoked serial in the CA panel', async () => {
    const serialCell = page.locator('tr[data-workload="photo-ns/photo-backend"] .serial');
    const before = (await serialCell.textContent()) ?? '';
    const res = await fetch(`${base}/ca/revoke?serial=${before}`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    await page.waitForFunction(
      `(document.querySelector('tr[data-workload="photo-ns/photo-backend"] .serial')?.textContent ?? '${before}') !== '${before}'`,
      undefined,
      { timeout: 15_000 },
    );
    assert.match((await page.locator('#ca .revoked').textContent()) ?? '', new RegExp(before));
    await page.waitForFunction("/revocation/.test(document.querySelector('#events')?.textContent ?? '')", undefined, { timeout: 5_000 });
  });

  it('shows a NACK with Envoy’s message and a NACK event, then SYNCED again once the config is fixed', async () => {
    // As in status.test.ts: a second photo-backend port, 15001, is valid config, but its inbound
    // listener takes the address the outbound listener has, and Envoy refuses the update.
    const anchor = 'app: photo-backend\n  ports:\n';
    mesh!.writeConfig(
      'mesh.yaml',
      photoAppConfig((y) => y.replace(anchor, `${anchor}    - name: http-admin\n      port: 15001\n      targetPort: 8081\n`)),
    );
    const nacked = 'tr[data-workload="photo-ns/photo-backend"] .badge.NACKED';
    try {
      await page.waitForSelector(nacked, { timeout: 15_000 });
      assert.match(
        (await page.locator('tr[data-workload="photo-ns/photo-backend"] .nack-msg').textContent()) ?? '',
        /LDS: .*duplicate address/,
      );
      assert.match(
        (await page.locator('#events').textContent()) ?? '',
        new RegExp(`nack.*LDS NACK from sidecar~${backend.address.replace(/\./g, '\\.')}`, 's'),
      );
    } finally {
      // Later tests expect the valid config, even when this one failed.
      mesh!.writeConfig('mesh.yaml', photoAppConfig());
    }
    await page.waitForSelector(nacked, { state: 'detached', timeout: 15_000 });
  });

  it('fits 1280×800 and a narrow window (screenshots in e2e/out/)', async () => {
    await page.waitForFunction("document.querySelectorAll('#workloads .badge.SYNCED').length === 15", undefined, { timeout: 15_000 });
    await page.screenshot({ path: shot('mesh-page.png') });
    // `make screenshot` regenerates the README's picture from this live mesh.
    const docs = process.env.MESH_PAGE_SCREENSHOT;
    if (docs) {
      mkdirSync(join(docs, '..'), { recursive: true });
      copyFileSync(shot('mesh-page.png'), docs);
    }
    const scrollWidth = await page.evaluate<number>('document.documentElement.scrollWidth');
    assert.ok(scrollWidth <= 1280, `no horizontal scroll at 1280 (page is ${scrollWidth}px wide)`);
    await page.setViewportSize({ width: 400, height: 800 });
    await page.screenshot({ path: shot('mesh-page-narrow.png'), fullPage: true });
    const narrow = await page.evaluate<number>('document.documentElement.scrollWidth');
    assert.ok(narrow <= 400, `no horizontal page scroll at 400 px (page is ${narrow}px wide)`);
    await page.setViewportSize({ width: 1280, height: 800 });
  });
});

/** A synthetic view: `n` workloads over `n / 10` namespaces, and a workload with a hostile name. */
function syntheticView(n: number, now: number): MeshView {
  const hostile = '<img src=x onerror=alert(1)>';
  const workloads = Array.from({ length: n }, (_, i) => ({
    namespace: i === 0 ? `ns-${hostile}` : `ns-${Math.floor(i / 10)}`,
    name: i === 0 ? hostile : `workload-${i}`,
    spiffeId: `spiffe://cluster.local/ns/ns-${Math.floor(i / 10)}/sa/${i === 0 ? hostile : `workload-${i}`}`,
    address: `10.0.${Math.floor(i / 250)}.${i % 250}`,
    svid: {
      serialHex: (i + 1).toString(16).padStart(32, '0'),
      notBefore: now - 3_600_000,
      notAfter: now + (i % 3) * 7_200_000 + 600_000,
      renewAt: now - 1,
    },
    proxies: [
      {
        nodeId: `sidecar~10.0.0.1~workload-${i}.ns~ns.svc.cluster.local`,
        types: ['lds', 'rds', 'cds', 'eds', 'sds'].map((type) => ({
          type,
          status: i === 0 && type === 'lds' ? 'NACKED' : 'SYNCED',
          ...(i === 0 && type === 'lds' ? { nack: `listener ${hostile} refused` } : {}),
        })),
      },
    ],
  }));
  const services = [`ns-0/${hostile}`, ...Array.from({ length: 39 }, (_, i) => `ns-${i + 1}/workload-${(i + 1) * 10}`)];
  const cells = services.flatMap((from, i) =>
    services.map((to, j) => ({
      from,
      to,
      port: 9080,
      verdict: (i + j) % 5 === 0 ? ('deny' as const) : (i + j) % 7 === 0 ? ('would-deny' as const) : ('allow' as const),
      mtls: 'STRICT',
      detail: `by ${hostile}`,
    })),
  );
  return {
    now,
    trustDomain: 'cluster.local',
    configVersion: 'synthetic',
    workloads,
    matrix: { services, cells, truncatedFrom: n },
    ca: { mode: 'ephemeral', rotation: 'none', roots: [{ subject: `CN=${hostile}`, serialHex: '01', notAfter: now + 1e10 }], revoked: [] },
    events: [{ seq: 1, at: now, kind: 'config-refused', text: `config refused: mesh.yaml:3: ${hostile}` }],
  };
}

describe('the mesh page with a synthetic mesh: hostile names, 1,000 workloads, lost connection (issue 14)', function () {
  this.timeout(60_000);
  const TOKEN = 'synthetic-admin-token';
  let admin: AdminServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  const dialogs: string[] = [];

  before(async function () {
    if (!haveChromium()) this.skip();
    const view = syntheticView(1_000, systemClock.now());
    const meshPage = createMeshPage({ token: TOKEN, view: () => view, clock: systemClock, log: silentLogger });
    admin = await startAdminServer({
      host: '127.0.0.1',
      port: 0,
      token: TOKEN,
      page: meshPage,
      metrics: createMetrics({ clock: systemClock }),
      log: silentLogger,
      actions: {
        connections: () => [],
        config: () => ({}),
        caStatus: () => ({}),
        revoke: () => err('synthetic'),
        sign: () => err('synthetic'),
        rotateRoot: () => err('synthetic'),
        proxyStatus: () => [],
      },
    });
    browser = await launchBrowser();
    // The test's own predicates are strings the page evaluates; bypassing the page's CSP for them
    // also means the hostile-name test proves the rendering itself, not the CSP, keeps names inert.
    page = await browser.newPage({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
  });

  after(async () => {
    await browser?.close();
    await admin?.close();
  });

  it('signs in with the login form, and refuses a wrong token', async () => {
    const base = `http://127.0.0.1:${admin!.port}`;
    await page.goto(`${base}/`);
    await page.fill('input[name=token]', 'wrong');
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    assert.match((await page.locator('.error').textContent()) ?? '', /not the admin token/);
    await page.fill('input[name=token]', TOKEN);
    const started = Date.now();
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    await page.waitForFunction("document.querySelectorAll('#workloads tr[data-workload]').length === 1000", undefined, { timeout: 20_000 });
    const renderMs = Number(await page.evaluate<string>('document.body.dataset.renderMs'));
    // Measured and reported, not asserted: the machine is shared.
    console.log(`      1,000 workloads and a 40×40 matrix: rendered in ${renderMs} ms; sign-in to rendered ${Date.now() - started} ms`);
    await page.screenshot({ path: shot('mesh-page-1000.png') });
  });

  it('renders a workload named <img src=x onerror=alert(1)> as text, everywhere', async () => {
    const row = page.locator('#workloads tr[data-workload]').filter({ hasText: '<img src=x onerror=alert(1)>' });
    assert.equal(await row.count(), 1);
    assert.equal(await page.locator('img').count(), 0, 'no element was made from a name');
    assert.match((await page.locator('#events').textContent()) ?? '', /<img src=x onerror=alert\(1\)>/);
    assert.match((await page.locator('#ca').textContent()) ?? '', /CN=<img src=x/);
    assert.match((await page.locator('#workloads').textContent()) ?? '', /listener <img src=x onerror=alert\(1\)> refused/);
    assert.deepEqual(dialogs, [], 'no script ran');
  });

  it('says when it lost its connection', async () => {
    await admin!.close();
    admin = undefined;
    await page.waitForFunction("/connection lost/.test(document.querySelector('#conn')?.textContent ?? '')", undefined, {
      timeout: 15_000,
    });
  });
});
