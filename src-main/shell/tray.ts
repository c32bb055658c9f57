import { Menu, Tray, nativeImage } from 'electron';
import { resourcePath } from './resources.js';

export interface TrayActions {
  show(): void;
  newSession(): void;
  quit(): void;
}

let tray: Tray | null = null; // kept referenced: a collected Tray disappears from the panel

export function createTray(actions: TrayActions): Tray {
  tray = new Tray(nativeImage.createFromPath(resourcePath('tray.png')));
  tray.setToolTip('vOS');
  tray.setContextMenu(
    Menu.buildFromTemplate([
      { label: 'Show vOS', click: actions.show },
      { label: 'New Session…', click: actions.newSession },
      { type: 'separator' },
      { label: 'Quit vOS (ends its sessions)', click: actions.quit },
    ]),
  );
  tray.on('click', actions.show);
  return tray;
}
