/** The machine community: peers, peer add, pair (request, --pending, accept, reject), unpair. */
import type { ApiClient } from '../../api/client.js';
import type { PeerInfo } from '../../api/protocol.js';
import { UsageError, parseArgs, requireInt } from '../args.js';
import type { Command, CommandContext } from '../command.js';
import { peerName, peerText, peersTable, table } from '../format.js';

const PEER_HELP = '  PEER  a machine: its name, or the start of its id (as vos peers shows it)\n';

async function withAgent<T>(ctx: CommandContext, body: (client: ApiClient) => Promise<T>): Promise<T> {
  const client = await ctx.connect();
  try {
    return await body(client);
  } finally {
    client.close();
  }
}

function describe(p: PeerInfo): string {
  return `${peerName(p.name)} (${peerText(p.shortId)})`;
}

/** The two machines' short ids beside a pairing's code: the same on both screens. */
function idsOf(p: PeerInfo): string {
  return p.pairing ? `${p.pairing.shortIds.requester} -> ${p.pairing.shortIds.responder}` : '';
}

export const peersCommand: Command = {
  name: 'peers',
  summary: 'list the machines this one knows: nearby, added, paired',
  help: `usage: vos peers [--json]

Lists the machines this agent knows of: found on the network (mDNS), added by hand
(vos peer add), or paired. For each: its id, name, whether it is paired and online, when it
was last seen, its system and its addresses.
  --json    an array of peer objects (id, shortId, name, os, arch, kernel, version, load,
            addresses, paired, online, lastSeen, link, warning, pairing)
`,
  async run(argv, ctx) {
    const { options, positionals } = parseArgs(argv, { json: { type: 'boolean' } });
    if (positionals.length) throw new UsageError('vos peers takes no arguments');
    return withAgent(ctx, async (client) => {
      const peers = await client.request('peer.list', {});
      ctx.out(options.json ? JSON.stringify(peers, null, 2) + '\n' : peersTable(peers));
      return 0;
    });
  },
};

export const peerCommand: Command = {
  name: 'peer',
  summary: 'add a machine by address (where discovery does not reach)',
  help: `usage: vos peer add HOST:PORT

Connects to the vOS agent at HOST:PORT and remembers the address, for networks where
multicast discovery does not work (VPNs, isolated Wi-Fi, other subnets). Nothing is trusted
by adding: pair with it next (vos pair NAME). PORT defaults to 47470.
`,
  async run(argv, ctx) {
    const { positionals } = parseArgs(argv, {});
    if (positionals[0] !== 'add' || positionals.length !== 2) throw new UsageError('usage: vos peer add HOST:PORT');
    return withAgent(ctx, async (client) => {
      const p = await client.request('peer.add', { address: positionals[1]! });
      ctx.out(`added ${describe(p)} at ${p.addresses[0] ?? positionals[1]}${p.paired ? ' (paired)' : '; pair with it: vos pair ' + peerName(p.name)}\n`);
      return 0;
    });
  },
};

export const pairCommand: Command = {
  name: 'pair',
  summary: 'pair with a machine, or answer its request',
  help: `usage: vos pair PEER [--timeout SECONDS]
       vos pair --pending [--json]
       vos pair accept PEER --code CODE
       vos pair reject PEER

Pairing lets two machines see and use each other's sessions. It is explicit and mutual:
'vos pair PEER' asks PEER and shows a six-digit code with the short ids of both machines
(asking -> asked); the same code and ids show on PEER, where its user accepts with
'vos pair accept THIS-MACHINE --code CODE' (or in the app). Then both remember each other.
Compare the codes and the ids: a different code means you are not talking to the machine
you think (a new code is drawn for every request, so one in the middle cannot make them match).
${PEER_HELP}  --timeout SECONDS   how long to wait for the other side (default 120)
  --pending           the requests in progress here, both directions, with their codes
  --code CODE         the code this machine shows for PEER's request
`,
  async run(argv, ctx) {
    const { options, positionals } = parseArgs(argv, {
      pending: { type: 'boolean' },
      json: { type: 'boolean' },
      code: { type: 'string' },
      timeout: { type: 'string' },
    });
    if (options.pending) {
      if (positionals.length) throw new UsageError('vos pair --pending takes no arguments');
      return withAgent(ctx, async (client) => {
        const pending = await client.request('pair.pending', {});
        if (options.json) ctx.out(JSON.stringify(pending, null, 2) + '\n');
        else if (pending.length === 0) ctx.out('no pairing requests\n');
        else {
          ctx.out(
            table(
              ['ID', 'NAME', 'DIRECTION', 'CODE', 'REQUESTER -> RESPONDER', 'SINCE'],
              pending.map((p) => [
                peerText(p.shortId),
                peerName(p.name),
                p.pairing!.direction === 'incoming' ? 'asks to pair with this machine' : 'asked by this machine',
                p.pairing!.code,
                idsOf(p),
                new Date(p.pairing!.since).toLocaleTimeString(),
              ]),
            ),
          );
        }
        return 0;
      });
    }
    const [verb, target] = positionals;
    if (verb === 'accept') {
      if (positionals.length !== 2 || typeof options.code !== 'string') throw new UsageError('usage: vos pair accept PEER --code CODE');
      const code = options.code;
      return withAgent(ctx, async (client) => {
        const p = await client.request('pair.accept', { peer: target!, code });
        ctx.out(`paired with ${describe(p)}\n`);
        return 0;
      });
    }
    if (verb === 'reject') {
      if (positionals.length !== 2) throw new UsageError('usage: vos pair reject PEER');
      return withAgent(ctx, async (client) => {
        const p = await client.request('pair.reject', { peer: target! });
        ctx.out(`rejected ${describe(p)}\n`);
        return 0;
      });
    }
    if (positionals.length !== 1) throw new UsageError('usage: vos pair PEER (or: --pending, accept, reject)');
    const timeoutMs = (typeof options.timeout === 'string' ? requireInt(options.timeout, 'SECONDS', 1, 3600) : 120) * 1000;
    return withAgent(ctx, async (client) => {
      const { peer, code } = await client.request('pair.request', { peer: verb! });
      if (peer.paired) {
        ctx.out(`paired with ${describe(peer)} (it knew this machine already)\n`);
        return 0;
      }
      ctx.out(
        `code ${code}   ${idsOf(peer)}\n` +
          `asked ${describe(peer)}; on it, check that it shows the same code and the same two ids, and accept:\n` +
          `  vos pair accept ${(await client.ready()).name} --code ${code}\nwaiting...\n`,
      );
      const done = await client.request('pair.wait', { peer: peer.id, timeoutMs });
      ctx.out(`paired with ${describe(done)}\n`);
      return 0;
    });
  },
};

export const unpairCommand: Command = {
  name: 'unpair',
  summary: 'forget a paired machine (on both sides where reachable)',
  help: `usage: vos unpair PEER

Forgets the pairing with PEER here and, if it is reachable now, there too. Its sessions are no
longer visible from here, nor this machine's from there.
${PEER_HELP}`,
  async run(argv, ctx) {
    const { positionals } = parseArgs(argv, {});
    if (positionals.length !== 1) throw new UsageError('usage: vos unpair PEER');
    return withAgent(ctx, async (client) => {
      const p = await client.request('peer.unpair', { peer: positionals[0]! });
      ctx.out(`unpaired ${describe(p)}\n`);
      return 0;
    });
  },
};
