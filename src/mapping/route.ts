/**
 * Where a message goes and how it looks there. For now one target folder for every message
 * (`--folder`), fixed flags (`--flag`), and the arrival date from the message's own headers
 * (mapping/date.ts). Rule-based routing replaces `singleFolderRouter` without touching the
 * engine, which only sees the Router type.
 */
import type { Router } from '../engine/run.js';
import { arrivalDate } from './date.js';

export interface SimpleRouteOptions {
  folder: string;
  flags: string[];
  /** Keep the copy time as INTERNALDATE instead of the message's arrival date. */
  keepCopyDate?: boolean;
  now?: () => Date;
}

export function normaliseFolder(name: string): string {
  const trimmed = name.replace(/^\/+|\/+$/g, '');
  return /^inbox$/i.test(trimmed) ? 'INBOX' : trimmed;
}

export function singleFolderRouter(o: SimpleRouteOptions): Router {
  const folder = normaliseFolder(o.folder);
  const now = o.now ?? (() => new Date());
  return ({ fields }) => {
    const arrival = o.keepCopyDate ? { date: null, source: 'copy-time' } : arrivalDate(fields, now());
    return { folder, flags: [...o.flags], internalDate: arrival.date, dateSource: arrival.source, seenSource: null, folderRule: null };
  };
}
