/**
 * The mirror thread: parses every session's output into its screen mirror (screen-mirror.ts),
 * away from the agent's event loop. Started by mirror-thread.ts; speaks mirror-protocol.ts.
 * Counts of parsed output are sent once per turn of this thread's loop at most, and only when
 * asked or large (see the write message's `report`).
 */
import { parentPort } from 'node:worker_threads';
import { REPORT_CHARS, type FromMirror, type ToMirror } from './mirror-protocol.js';
import { ScreenMirror } from './screen-mirror.js';

if (!parentPort) throw new Error('mirror-worker.js runs as a worker thread of the agent');
const port = parentPort;

const mirrors = new Map<number, ScreenMirror>();
/** Parsed characters per mirror not yet reported. */
const parsed = new Map<number, number>();
let reportScheduled = false;

function post(message: FromMirror): void {
  port.postMessage(message);
}

function report(): void {
  reportScheduled = false;
  for (const [mirror, chars] of parsed) post({ t: 'parsed', mirror, chars });
  parsed.clear();
}

function open(id: number, cols: number, rows: number): void {
  mirrors.get(id)?.dispose();
  const m = new ScreenMirror(cols, rows);
  m.onAnswer = (data) => post({ t: 'answer', mirror: id, data });
  mirrors.set(id, m);
}

function write(id: number, data: string, quiet: boolean, asks: boolean, now: boolean): void {
  const m = mirrors.get(id);
  if (!m) return;
  m.write(
    data,
    () => {
      const chars = (parsed.get(id) ?? 0) + data.length;
      parsed.set(id, chars);
      if ((now || chars >= REPORT_CHARS) && !reportScheduled) {
        reportScheduled = true;
        setImmediate(report);
      }
    },
    quiet,
    // Someone waits for text (report): the output is parsed as it comes, not let gather.
    asks || now,
  );
}

function read(id: number, req: number, what: 'shot' | 'text' | 'point'): void {
  const m = mirrors.get(id);
  if (!m) {
    post({ t: 'read', req, shot: null, text: null });
    return;
  }
  void m.atCurrentPoint(() => {
    // Parsed counts go first: the reader may look at them once it has its answer.
    report();
    if (what === 'shot') post({ t: 'read', req, shot: m.shot() });
    else if (what === 'text') {
      const { id: _id, ...text } = m.text('');
      post({ t: 'read', req, text });
    } else post({ t: 'read', req });
  });
}

port.on('message', (msg: ToMirror) => {
  switch (msg.t) {
    case 'open':
      open(msg.mirror, msg.cols, msg.rows);
      break;
    case 'write':
      write(msg.mirror, msg.data, msg.quiet, msg.asks, msg.report);
      break;
    case 'resize':
      mirrors.get(msg.mirror)?.resize(msg.cols, msg.rows);
      break;
    case 'read':
      read(msg.mirror, msg.req, msg.what);
      break;
    case 'close':
      mirrors.get(msg.mirror)?.dispose();
      mirrors.delete(msg.mirror);
      parsed.delete(msg.mirror);
      break;
  }
});
