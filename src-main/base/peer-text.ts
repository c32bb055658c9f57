/**
 * Text another machine wrote (its name, version and system in HELLO or mDNS TXT, a reason in a
 * pairing message), made safe to show: such text reaches a terminal (`vos peers`, `vos pair
 * --pending`, the agent's log), where an escape sequence could set the window title, write the
 * clipboard, clear the screen or draw a fake pairing code, and a bidirectional override could
 * show a name reversed. So terminal escape sequences go whole, then every control character
 * (C0, DEL, C1; tabs and line breaks become spaces) and every bidirectional embedding, override,
 * isolate and mark, and the text is cut to a length. Used where peer text enters the agent and
 * again where the CLI and the log show it.
 */

/** ESC and the rest of its sequence: CSI (ESC [ ... final), OSC/DCS/SOS/PM/APC (to BEL, ST or the end), or one character. */
const ESCAPE_SEQUENCE = /\x1b(?:\[[0-?]*[ -/]*[@-~]?|[\]PX^_][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?|[\s\S]?)/g;
/** The same introduced by a C1 control (U+009B CSI, U+009D OSC, U+0090 DCS, U+0098 SOS, U+009E PM, U+009F APC). */
const C1_SEQUENCE = /\x9b[0-?]*[ -/]*[@-~]?|[\x9d\x90\x98\x9e\x9f][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?/g;
/** Tabs and line breaks (U+2028/U+2029 too): a space, so that words stay apart. */
const BREAKS = /[\t\n\v\f\r\u2028\u2029]/g;
/** C0, DEL, C1, and the bidirectional controls (LRE RLE PDF LRO RLO, LRI RLI FSI PDI, LRM RLM, ALM). */
const CONTROLS = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/g;
/** A surrogate without its other half (it cannot be shown, and cutting must not make one). */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Peer-supplied names are cut to this many characters. */
export const PEER_NAME_MAX = 64;
/** Other short fields (version, system, architecture) are cut to this. */
export const PEER_FIELD_MAX = 128;

/**
 * `text` without escape sequences, control or bidirectional characters, trimmed and cut to `max`
 * characters (code points); anything but a string is ''.
 */
export function cleanPeerText(text: unknown, max: number = PEER_FIELD_MAX): string {
  if (typeof text !== 'string') return '';
  const clean = strip(text).trim();
  const chars = Array.from(clean);
  return chars.length > max ? chars.slice(0, max).join('').trimEnd() : clean;
}

/**
 * A log message made safe the same way, for any length, but keeping its line breaks: the lines
 * after the first are indented, so that no text in a message can pass for a log entry of its own.
 */
export function cleanLogText(message: string): string {
  return message
    .split(/\r?\n/)
    .map((line, i) => (i === 0 ? '' : '  ') + strip(line))
    .join('\n');
}

function strip(text: string): string {
  return text.replace(ESCAPE_SEQUENCE, '').replace(C1_SEQUENCE, '').replace(BREAKS, ' ').replace(CONTROLS, '').replace(LONE_SURROGATE, '');
}
