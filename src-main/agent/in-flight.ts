/**
 * Limits on requests in flight (sent to the agent, not yet answered). More are refused at once
 * with `busy`: a refusal costs nothing, while a request may cost a snapshot of megabytes or a
 * long wait. A client that waits for its answers never comes near these.
 */

/** Per connection (a local client, or one conversation of a peer). */
export const MAX_IN_FLIGHT = 32;
/** Over all the conversations of one peer's link (it may open 256 of them). */
export const MAX_IN_FLIGHT_PER_LINK = 64;

/** A count of requests in flight against a limit, shared by the connections that use it. */
export class InFlight {
  count = 0;
  constructor(readonly limit: number) {}

  get full(): boolean {
    return this.count >= this.limit;
  }
}
