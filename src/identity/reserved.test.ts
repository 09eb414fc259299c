import assert from 'node:assert/strict';
import { isReservedIdentity, mustSpiffeId, reservedServiceAccount } from './index.js';

describe('reserved identities', () => {
  const settings = { rootNamespace: 'istio-system' };

  it('reserves the control plane service account in the root namespace only', () => {
    assert.equal(isReservedIdentity(mustSpiffeId('spiffe://cluster.local/ns/istio-system/sa/meshpilot'), settings), true);
    assert.equal(isReservedIdentity(mustSpiffeId('spiffe://other.td/ns/istio-system/sa/meshpilot'), settings), true);
    assert.equal(isReservedIdentity(mustSpiffeId('spiffe://cluster.local/ns/default/sa/meshpilot'), settings), false);
    assert.equal(isReservedIdentity(mustSpiffeId('spiffe://cluster.local/ns/istio-system/sa/other'), settings), false);
    assert.equal(isReservedIdentity(mustSpiffeId('spiffe://cluster.local/ns/istio-system/sa/meshpilot/x'), settings), false);
    assert.equal(
      isReservedIdentity(mustSpiffeId('spiffe://cluster.local/ns/mesh-root/sa/meshpilot'), { rootNamespace: 'mesh-root' }),
      true,
    );
  });

  it('says why a service account is reserved', () => {
    assert.match(reservedServiceAccount('istio-system', 'meshpilot', settings) ?? '', /istio-system\/meshpilot is reserved/);
    assert.equal(reservedServiceAccount('istio-system', 'constructor', settings), undefined);
  });
});
