/**
 * What the Electron preload script exposes to the renderer as `window.vosBridge`: the local API's
 * messages (the same ones the socket and the WebSocket carry) and the few commands the shell
 * itself gives the UI (from the tray menu). Nothing else of Electron or Node reaches the page.
 */
import type { AgentMessage, ClientMessage } from './protocol.js';

export type ShellCommand = 'new-session';

export interface VosBridge {
  /** Starts a fresh connection to the agent (a reload starts another). */
  connect(): void;
  send(message: ClientMessage): void;
  onMessage(handler: (message: AgentMessage) => void): void;
  onShellCommand(handler: (command: ShellCommand) => void): void;
}

/** IPC channel names, shared by the main process and the preload script. */
export const BRIDGE_CHANNELS = {
  connect: 'vos:connect',
  toAgent: 'vos:to-agent',
  fromAgent: 'vos:from-agent',
  shellCommand: 'vos:shell-command',
} as const;
