import { join } from 'node:path';
import { packageRoot } from '../base/package-paths.js';

/** A file of resources/ (icons, tray images). */
export function resourcePath(name: string): string {
  return join(packageRoot(), 'resources', name);
}
