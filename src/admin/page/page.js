// The mesh page: renders the view the admin server streams (server-sent events) into the
// static markup. Every name from the config goes in as text (textContent), never as markup.
'use strict';

const RENEWAL_DUE = 'renewal-due';
let view;
let clockSkew = 0; // server time minus browser time, so expiry countdowns use the server's clock
let selected; // the matrix cell whose detail is shown

/** Makes an element with text and classes; children are appended as given. */
function el(tag, opts, ...children) {
  const e = document.createElement(tag);
  if (opts && opts.className) e.className = opts.className;
  if (opts && opts.text !== undefined) e.textContent = String(opts.text);
  if (opts && opts.title) e.title = opts.title;
  for (const c of children) if (c) e.append(c);
  return e;
}

function duration(ms) {
  const s = Math.round(Math.abs(ms) / 1000);
  const text =
    s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : s < 172800 ? `${(s / 3600).toFixed(1)}h` : `${Math.round(s / 86400)}d`;
  return ms < 0 ? `expired ${text} ago` : text;
}

function time(ms) {
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, 'Z');
}

/** Expiry cell text and class, from the server-adjusted clock. */
function expiry(svid) {
  const now = Date.now() + clockSkew;
  const left = svid.notAfter - now;
  const life = svid.notAfter - svid.notBefore;
  const cls = left <= 0 ? 'expired' : left < life * 0.1 ? 'near' : now >= svid.renewAt ? RENEWAL_DUE : '';
  const note = cls === RENEWAL_DUE ? ' (past renewal point)' : cls === 'near' ? ' (near expiry)' : '';
  return { text: duration(left) + note, cls };
}

function renderWorkloads(v) {
  const table = document.getElementById('workloads');
  for (const old of table.querySelectorAll('tbody')) old.remove();
  const byNs = new Map();
  for (const w of v.workloads) {
    if (!byNs.has(w.namespace)) byNs.set(w.namespace, []);
    byNs.get(w.namespace).push(w);
  }
  const frag = document.createDocumentFragment();
  for (const ns of [...byNs.keys()].sort()) {
    const body = el('tbody');
    const head = el('tr', { className: 'ns' }, el('th', { text: `namespace ${ns}` }));
    head.firstChild.colSpan = 5;
    body.append(head);
    for (const w of byNs.get(ns).sort((a, b) => a.name.localeCompare(b.name))) {
      const row = el('tr');
      row.dataset.workload = `${w.namespace}/${w.name}`;
      row.append(el('td', { text: w.name }), el('td', {}, el('code', { text: w.spiffeId })));
      if (w.svid) {
        const e = expiry(w.svid);
        row.append(el('td', {}, el('code', { className: 'serial', text: w.svid.serialHex })));
        const cell = el('td', { className: `expiry ${e.cls}`, text: e.text, title: `not after ${time(w.svid.notAfter)}` });
        cell.dataset.notBefore = w.svid.notBefore;
        cell.dataset.notAfter = w.svid.notAfter;
        cell.dataset.renewAt = w.svid.renewAt;
        row.append(cell);
      } else {
        row.append(el('td', { className: 'muted', text: '—' }), el('td', { className: 'muted', text: 'no SVID (no proxy)' }));
      }
      const sync = el('td');
      if (w.proxies.length === 0) sync.append(el('span', { className: 'muted', text: 'not connected' }));
      for (const p of w.proxies) {
        for (const t of p.types) {
          sync.append(
            el('span', {
              className: `badge ${t.status.replace(' ', '-')}`,
              text: `${t.type.toUpperCase()} ${t.status}`,
              title: t.nack || p.nodeId,
            }),
          );
        }
        for (const t of p.types) if (t.nack) sync.append(el('span', { className: 'nack-msg', text: `${t.type.toUpperCase()}: ${t.nack}` }));
      }
      row.append(sync);
      body.append(row);
    }
    frag.append(body);
  }
  table.append(frag);
  document.getElementById('workload-count').textContent = `(${v.workloads.length})`;
}

function showDetail(cell) {
  selected = `${cell.from}>${cell.to}`;
  document.getElementById('cell-detail').textContent =
    `${cell.from} → ${cell.to}:${cell.port} — ${cell.verdict}, mTLS ${cell.mtls}\n${cell.detail}`;
}

function renderMatrix(v) {
  const table = document.getElementById('matrix');
  const cells = new Map(v.matrix.cells.map((c) => [`${c.from}>${c.to}`, c]));
  const head = el('tr', {}, el('th', { text: 'caller ↓ / callee →' }));
  for (const s of v.matrix.services) head.append(el('th', { className: 'col', text: s }));
  const body = el('tbody');
  for (const from of v.matrix.services) {
    const row = el('tr', {}, el('th', { className: 'row', text: from }));
    for (const to of v.matrix.services) {
      const c = cells.get(`${from}>${to}`);
      const td = el('td');
      if (c) {
        const label = c.verdict === 'would-deny' ? 'would deny' : c.verdict;
        const b = el(
          'button',
          { className: `v ${c.verdict}`, text: label, title: c.detail },
          el('span', { className: 'mtls', text: c.mtls }),
        );
        b.type = 'button';
        b.dataset.from = c.from;
        b.dataset.to = c.to;
        b.dataset.verdict = c.verdict;
        b.addEventListener('click', () => showDetail(c));
        td.append(b);
      }
      row.append(td);
    }
    body.append(row);
  }
  table.replaceChildren(el('thead', {}, head), body);
  const note = v.matrix.truncatedFrom ? `Showing the first ${v.matrix.services.length} of ${v.matrix.truncatedFrom} services.` : '';
  document.getElementById('matrix-note').textContent = note;
  const still = selected && cells.get(selected);
  if (still) showDetail(still);
  else document.getElementById('cell-detail').textContent = '';
}

function renderCa(v) {
  const dl = document.getElementById('ca');
  const rows = [
    ['Mode', v.ca.mode],
    ['Rotation phase', v.ca.rotation],
    ['CRL next update', v.ca.crlNextUpdate ? time(v.ca.crlNextUpdate) : '—'],
  ];
  const frag = document.createDocumentFragment();
  for (const [k, val] of rows) frag.append(el('dt', { text: k }), el('dd', { text: val }));
  const roots = el('dd');
  for (const r of v.ca.roots)
    roots.append(el('div', { text: r.subject }, el('code', { text: ` ${r.serialHex}`, title: `not after ${time(r.notAfter)}` })));
  frag.append(el('dt', { text: `Roots (${v.ca.roots.length})` }), roots);
  const revoked = el('dd', { className: 'revoked' });
  if (v.ca.revoked.length === 0) revoked.append(el('span', { className: 'muted', text: 'none' }));
  for (const r of v.ca.revoked)
    revoked.append(el('div', {}, el('code', { text: r.serialHex }), el('span', { className: 'muted small', text: ` ${r.spiffeId}` })));
  frag.append(el('dt', { text: `Revoked (${v.ca.revoked.length})` }), revoked);
  dl.replaceChildren(frag);
}

function renderEvents(v) {
  const list = document.getElementById('events');
  const frag = document.createDocumentFragment();
  for (const e of [...v.events].reverse()) {
    const t = el('time', { text: time(e.at).slice(11) });
    frag.append(el('li', {}, t, el('span', { className: `kind ${e.kind}`, text: e.kind }), el('span', { text: e.text })));
  }
  if (v.events.length === 0) frag.append(el('li', { className: 'muted', text: 'nothing yet' }));
  list.replaceChildren(frag);
}

function render(v) {
  const started = performance.now();
  view = v;
  clockSkew = v.now - Date.now();
  document.getElementById('domain').textContent = `trust domain ${v.trustDomain}${v.configVersion ? ` · config ${v.configVersion}` : ''}`;
  renderWorkloads(v);
  renderMatrix(v);
  renderCa(v);
  renderEvents(v);
  document.body.dataset.renderMs = String(Math.round(performance.now() - started));
  document.body.dataset.views = String(Number(document.body.dataset.views || 0) + 1);
}

function setConnection(state, text) {
  const c = document.getElementById('conn');
  c.className = `conn ${state}`;
  c.textContent = text;
}

function connect() {
  const source = new EventSource('/mesh/events');
  source.addEventListener('open', () => setConnection('live', 'live'));
  source.addEventListener('view', (e) => {
    setConnection('live', 'live');
    render(JSON.parse(e.data));
  });
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) {
      // A refused stream (the session ended, or the server restarted with a new token) is not retried by the browser.
      setConnection('lost', 'connection lost — reload to sign in again');
      setTimeout(
        () =>
          fetch('/mesh/view').then(
            (r) => (r.ok ? (source.close(), connect()) : undefined),
            () => undefined,
          ),
        5000,
      );
    } else {
      setConnection('lost', 'connection lost — reconnecting…');
    }
  });
}

// Countdowns move between views without asking the server.
setInterval(() => {
  if (!view) return;
  for (const cell of document.querySelectorAll('td.expiry')) {
    const d = cell.dataset;
    const e = expiry({ notBefore: Number(d.notBefore), notAfter: Number(d.notAfter), renewAt: Number(d.renewAt) });
    cell.textContent = e.text;
    cell.className = `expiry ${e.cls}`;
  }
}, 1000);

connect();
