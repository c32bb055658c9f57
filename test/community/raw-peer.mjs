// A machine that was never paired, speaking the link protocol by hand (run inside a simulated
// host by pairing.test.ts): it connects to an agent, says hello, then tries what only a paired
// peer may do. Prints one JSON line per frame it gets back, and {"closed": true} when closed.
// Arguments: HOST PORT [API-REQUESTS-TO-FLOOD] [MS-TO-LISTEN] [PAIR-REQUESTS]
import { connect } from 'node:tls';
import { createSelfSignedIdentity } from '../../out/node/src-main/base/x509.js';
import { deviceIdOf } from '../../out/node/src-main/base/device-id.js';
import { pairingCommitment, pairingNonce } from '../../out/node/src-main/base/pairing-sas.js';
import { LinkFrameDecoder, encodeLinkFrame } from '../../out/node/src-main/base/link-frame.js';
import { LINK_PROTOCOL_VERSION } from '../../out/node/src-main/agent/community/link.js';

const [host, port, flood, , pairRequests] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4] ?? 0), 0, Number(process.argv[6] ?? 0)];
const me = createSelfSignedIdentity('vOS agent');
const socket = connect({ host, port, key: me.keyPem, cert: me.certPem, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
const decoder = new LinkFrameDecoder({ maxJsonBytes: 1 << 20 });
const print = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const send = (f) => socket.write(encodeLinkFrame(f));
const nonce = pairingNonce();
let revealed = false;
socket.on('secureConnect', () => {
  const agentId = deviceIdOf(socket.getPeerCertificate().raw);
  const commit = pairingCommitment(nonce, deviceIdOf(me.certDer), agentId);
  send({ kind: 'hello', stream: 0, json: { v: LINK_PROTOCOL_VERSION, id: deviceIdOf(me.certDer), name: 'stranger', version: '0', os: 'Linux', arch: 'x64', port: 0 } });
  send({ kind: 'rpc', stream: 0, json: { ch: 1, d: 'c', m: { t: 'hello', protocol: 1, client: 'stranger' } } });
  send({ kind: 'rpc', stream: 0, json: { ch: 1, d: 'c', m: { t: 'req', id: 7, method: 'session.list', params: {} } } });
  send({ kind: 'open', stream: 1, json: { what: 'image' } });
  for (let i = 0; i < pairRequests; i++) send({ kind: 'control', stream: 0, json: { t: 'pair-request', name: 'stranger', commit } });
  for (let i = 0; i < flood; i++) send({ kind: 'rpc', stream: 0, json: { ch: 1, d: 'c', m: { t: 'req', id: 100 + i, method: 'session.list', params: {} } } });
});
socket.on('data', (chunk) => {
  for (const f of decoder.push(chunk)) {
    if (f.kind === 'hello') print({ kind: 'hello', name: f.json.name });
    else if (f.kind === 'control' || f.kind === 'rpc' || f.kind === 'reset') print({ kind: f.kind, stream: f.stream, json: f.json });
    else print({ kind: f.kind });
    if (f.kind === 'control' && f.json.t === 'pair-nonce' && !revealed) {
      revealed = true;
      send({ kind: 'control', stream: 0, json: { t: 'pair-reveal', nonce } });
    }
  }
});
socket.on('close', () => print({ closed: true }));
socket.on('error', (err) => print({ error: err.message }));
setTimeout(() => {
  print({ done: true });
  socket.destroy();
}, Number(process.argv[5] ?? 2000));
