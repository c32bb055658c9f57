/** The machine community: peers, peer add, pair (request, confirm, --pending, accept, reject), unpair. */
import { createInterface } from 'node:readline/promises';
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
  summary: 'add a machine by address (where discovery does not reach), or forget one',
  help: `usage: vos peer add HOST:PORT
       vos peer forget PEER

add: connects to the vOS agent at HOST:PORT and remembers the address, for networks where
multicast discovery does not work (VPNs, isolated Wi-Fi, other subnets). Nothing is trusted
by adding: pair with it next (vos pair NAME). PORT defaults to 47470.

forget: removes a machine that is not paired from the list, its remembered addresses too, and
stops linking to it (unpair a paired one first: vos unpair PEER). It is listed again if it is
seen again on the network or links to this machine.
${PEER_HELP}`,
  async run(argv, ctx) {
    const { positionals } = parseArgs(argv, {});
    if (positionals[0] === 'forget' && positionals.length === 2) {
      return withAgent(ctx, async (client) => {
        await client.request('peer.forget', { peer: positionals[1]! });
        ctx.out(`forgot ${peerName(positionals[1]!)}\n`);
        return 0;
      });
    }
    if (positionals[0] !== 'add' || positionals.length !== 2) throw new UsageError('usage: vos peer add HOST:PORT | vos peer forget PEER');
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
       vos pair confirm PEER --code CODE
       vos pair --pending [--json]
       vos pair accept PEER --code CODE [--timeout SECONDS]
       vos pair reject PEER

Pairing lets two machines see and use each other's sessions. It is explicit and mutual, and
both users confirm the same code:
  - 'vos pair PEER' asks PEER and shows a six-digit code with the short ids of both machines
    (asking -> asked), and asks whether PEER shows the same. Answer y once it does (n cancels).
    Without a terminal it waits for 'vos pair confirm PEER --code CODE' (CODE: the one PEER
    shows) instead.
  - The same code and ids show on PEER, where its user accepts with
    'vos pair accept THIS-MACHINE --code CODE' (or in the app).
Once both confirmed, in either order, both remember each other. A different code means you
are not talking to the machine you think (a new code is drawn for every request, so one in
the middle cannot make them match): answer n, or reject it there.
${PEER_HELP}  --timeout SECONDS   how long to wait for the other side (default 120)
  --pending           the requests in progress here, both directions, with their codes
  --code CODE         accept: the code this machine shows for PEER's request;
                      confirm: the code PEER shows for this machine's request
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
    const timeoutMs = (typeof options.timeout === 'string' ? requireInt(options.timeout, 'SECONDS', 1, 3600) : 120) * 1000;
    if (verb === 'accept' || verb === 'confirm') {
      if (positionals.length !== 2 || typeof options.code !== 'string') throw new UsageError(`usage: vos pair ${verb} PEER --code CODE`);
      const code = options.code;
      return withAgent(ctx, async (client) => {
        if (verb === 'confirm') {
          // The asking `vos pair` waits for the other side and says when it is paired.
          const p = await client.request('pair.confirm', { peer: target!, code });
          ctx.out(p.paired ? `paired with ${describe(p)}\n` : `confirmed; ${describe(p)} is still to accept it there\n`);
          return 0;
        }
        const accepted = await client.request('pair.accept', { peer: target!, code });
        if (!accepted.paired) ctx.out(`accepted; waiting for ${describe(accepted)} to confirm the code there...\n`);
        const p = accepted.paired ? accepted : await client.request('pair.wait', { peer: accepted.id, timeoutMs });
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
    if (positionals.length !== 1) throw new UsageError('usage: vos pair PEER (or: --pending, confirm, accept, reject)');
    return withAgent(ctx, async (client) => {
      const { peer, code } = await client.request('pair.request', { peer: verb! });
      const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;
      ctx.out(
        `code ${code}   ${idsOf(peer)}\n` +
          `asked ${describe(peer)}; on it, check that it shows the same code and the same two ids, and accept:\n` +
          `  vos pair accept ${(await client.ready()).name} --code ${code}\n` +
          (interactive ? '' : `then confirm here that it shows the same code:\n  vos pair confirm ${peerName(peer.name)} --code CODE-SHOWN-THERE\nwaiting...\n`),
      );
      const waiting = client.request('pair.wait', { peer: peer.id, timeoutMs });
      if (interactive) {
        const same = await askSameCode(`Does ${peerName(peer.name)} show the same code (${code}) and ids (${idsOf(peer)})? [y/n] `, waiting);
        if (!same) {
          waiting.catch(() => {}); // it ends with the cancel below
          await client.request('pair.reject', { peer: peer.id });
          ctx.err(`the codes differ: the pairing with ${describe(peer)} is cancelled on both sides (another machine may be answering in its place)\n`);
          return 1;
        }
        const confirmed = await client.request('pair.confirm', { peer: peer.id, code });
        if (!confirmed.paired) ctx.out(`confirmed; waiting for ${describe(peer)} to accept...\n`);
      }
      const done = await waiting;
      ctx.out(`paired with ${describe(done)}\n`);
      return 0;
    });
  },
};

/**
 * Asks the user on the terminal whether the codes match: true for yes, false for no (and for
 * Ctrl-C or the end of input: nothing was confirmed). If the pairing ends meanwhile (`ended`
 * fails: rejected there, timed out), the question goes and that error is thrown.
 */
async function askSameCode(question: string, ended: Promise<unknown>): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  const abort = new AbortController();
  let failure: unknown = null;
  ended.catch((e: unknown) => {
    failure = e;
    abort.abort();
  });
  const interrupted = new Promise<false>((resolve) => {
    rl.once('SIGINT', () => resolve(false));
    rl.once('close', () => resolve(false));
  });
  const asking = (async (): Promise<boolean> => {
    for (;;) {
      const answer = (await rl.question(question, { signal: abort.signal })).trim().toLowerCase();
      if (answer === 'y' || answer === 'yes') return true;
      if (answer === 'n' || answer === 'no') return false;
    }
  })();
  try {
    return await Promise.race([asking, interrupted]);
  } catch (e) {
    process.stdout.write('\n');
    throw failure ?? e;
  } finally {
    asking.catch(() => {}); // the question is abandoned with the interface
    rl.close();
  }
}

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
