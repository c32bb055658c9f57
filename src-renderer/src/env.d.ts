/// <reference types="svelte" />
import type { VosBridge } from '../../src-main/api/bridge';

declare global {
  interface Window {
    /** Present in the Electron app (the preload bridge); absent in web mode. */
    vosBridge?: VosBridge;
  }
}

