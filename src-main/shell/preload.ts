/**
 * The preload bridge: exposes exactly the typed API (api/bridge.ts) to the renderer, nothing of
 * Electron or Node itself.
 */
import { contextBridge, ipcRenderer } from 'electron';
import { BRIDGE_CHANNELS, type ShellCommand, type VosBridge } from '../api/bridge.js';
import type { AgentMessage } from '../api/protocol.js';

const bridge: VosBridge = {
  connect: () => ipcRenderer.send(BRIDGE_CHANNELS.connect),
  send: (message) => ipcRenderer.send(BRIDGE_CHANNELS.toAgent, message),
  onMessage: (handler) => {
    ipcRenderer.removeAllListeners(BRIDGE_CHANNELS.fromAgent);
    ipcRenderer.on(BRIDGE_CHANNELS.fromAgent, (_e, message: AgentMessage) => handler(message));
  },
  onShellCommand: (handler) => {
    ipcRenderer.removeAllListeners(BRIDGE_CHANNELS.shellCommand);
    ipcRenderer.on(BRIDGE_CHANNELS.shellCommand, (_e, command: ShellCommand) => handler(command));
  },
};

contextBridge.exposeInMainWorld('vosBridge', bridge);
