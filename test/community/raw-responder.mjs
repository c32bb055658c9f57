// A machine in the middle as the side asked, speaking the link protocol by hand (run inside a
// simulated host by pairing.test.ts): it listens, and when an agent asks it to pair it answers
// with its nonce and then, without any user comparing codes, with `pair-accept`, and at once
// tries an API request (`session.list`), as a machine that had been trusted could. Prints one
// JSON line per frame it gets ({"listening": true} first, {"closed": true} when the link closes).
// Arguments: HOST PORT
import { createServer } from 'node:tls';
import { createSelfSignedIdentity } from '../../out/node/src-main/base/x509.js';
import { deviceIdOf } from '../../out/node/src-main/base/device-id.js';
import { pairingNonce } from '../../out/node/src-main/base/pairing-sas.js';
import { LinkFrameDecoder, encodeLinkFrame } from '../../out/node/src-main/base/link-frame.js';
import { LINK_PROTOCOL_VERSION } from '../../out/node/src-main/agent/community/link.js';

const [host, port] = [process.argv[2], Number(process.argv[3])];
const me = createSelfSignedIdentity('vOS agent');
const print = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const server = createServer({ key: me.keyPem, cert: me.certPem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (socket) => {
  const decoder = new LinkFrameDecoder({ maxJsonBytes: 1 << 20 });
  const send = (f) => socket.write(encodeLinkFrame(f));
  send({ kind: 'hello', stream: 0, json: { v: LINK_PROTOCOL_VERSION, id: deviceIdOf(me.certDer), name: 'fake', version: '0', os: 'Linux', arch: 'x64', port } });
  socket.on('data', (chunk) => {
    for (const f of decoder.push(chunk)) {
      if (f.kind === 'hello') print({ kind: 'hello', name: f.json.name });
      else if (f.kind === 'control' || f.kind === 'rpc' || f.kind === 'reset') print({ kind: f.kind, stream: f.stream, json: f.json });
      else print({ kind: f.kind });
      if (f.kind !== 'control') continue;
      if (f.json.t === 'pair-request') send({ kind: 'control', stream: 0, json: { t: 'pair-nonce', nonce: pairingNonce() } });
      if (f.json.t === 'pair-reveal') {
        // "Accepted": nobody here compared anything. Then straight to what only a paired peer may do.
        send({ kind: 'control', stream: 0, json: { t: 'pair-accept' } });
        send({ kind: 'rpc', stream: 0, json: { ch: 1, d: 'c', m: { t: 'hello', protocol: 1, client: 'fake' } } });
        send({ kind: 'rpc', stream: 0, json: { ch: 1, d: 'c', m: { t: 'req', id: 7, method: 'session.list', params: {} } } });
      }
    }
  });
  socket.on('close', () => print({ closed: true }));
  socket.on('error', (err) => print({ error: err.message }));
});
server.listen(port, host, () => print({ listening: true }));
process.on('SIGTERM', () => process.exit(0));
