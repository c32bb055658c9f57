/**
 * A transaction as a list of steps, each with what takes it back. The steps run in order; when
 * one fails, the ones that ran are undone in reverse order, each once, and the failure is
 * passed on. A step that fails cleans up after itself: its own undo is not called.
 *
 * A step may be the point of no return (`final`): once it has run, nothing is undone any more —
 * a later failure is the later steps' to handle (a migration whose original has ended can only
 * go forward). An undo that fails is logged; it never hides the failure that called for it.
 */
import { describeError } from '../../api/errors.js';

export interface Step {
  /** Names the step in the log (a failed undo). */
  readonly name: string;
  run(): Promise<void> | void;
  /** Takes back what `run` did; called only if `run` completed and a later step failed. */
  undo?(): Promise<void> | void;
  /** Once this step has run, no step is undone any more (this one neither). */
  readonly final?: boolean;
}

/** Runs `steps` in order; on a failure, undoes those that ran (before any final one) and rethrows. */
export async function runSteps(steps: readonly Step[], log: (message: string) => void): Promise<void> {
  const ran: Step[] = [];
  let final = false;
  for (const step of steps) {
    try {
      await step.run();
    } catch (err) {
      if (!final) await undo(ran, log);
      throw err;
    }
    if (step.final) final = true;
    else if (!final) ran.push(step);
  }
}

async function undo(ran: Step[], log: (message: string) => void): Promise<void> {
  for (const step of ran.reverse()) {
    if (!step.undo) continue;
    try {
      await step.undo();
    } catch (err) {
      log(`cannot undo ${step.name}: ${describeError(err)}`);
    }
  }
}
