/**
 * How long the links (and a committed move waiting for its target's "go") wait before they give
 * up on a silent peer and how soon they try again. Read once, when the agent starts.
 *
 * Test hook: VOS_TEST_FAST_LINKS=1 shortens these waits (a link lost is noticed after 4 s instead
 * of 10 s, a dropped link is dialled again within 1 s instead of 8 s, "go" is asked for 5 s
 * before the caller hears it is not confirmed yet, then every second; a relayed connection waits
 * 8 s for its link instead of 30 s), so the tests that pull a
 * cable do not wait out the real timeouts. Safe in shipped builds: it is read from the agent's
 * own environment, which only the user who starts the agent sets (no peer or client can), and
 * it only makes this agent give up on a silent peer (and ask it again) sooner; every step of a
 * link or a move still runs, and a link dropped too early is dialled again like any other.
 */
const fast = process.env.VOS_TEST_FAST_LINKS === '1';

/** A heartbeat is sent this often on every link... */
export const PING_EVERY_MS = fast ? 1_000 : 2_500;
/** ...and a link whose peer sent nothing for this long is closed. */
export const DEAD_AFTER_MS = fast ? 4_000 : 10_000;
/** The longest pause between two dials of a paired peer whose link is down. */
export const RECONNECT_MAX_MS = fast ? 1_000 : 8_000;
/** After the original ended, "go" is asked again every second for this long while the caller waits... */
export const GO_RETRY_MS = fast ? 5_000 : 20_000;
/** ...then in the background this often, for as long as the target holds the copy. */
export const GO_BACKGROUND_EVERY_MS = fast ? 1_000 : 5_000;
/** A relayed connection (agent/relay) whose link went away waits this long for it, then is reset. */
export const RELAY_OUTAGE_MS = fast ? 8_000 : 30_000;
