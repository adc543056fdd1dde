/**
 * The daemon's logger: pino, JSON lines on stderr by default, pino-pretty when stderr is a
 * terminal (or when asked). Also the two feeds every daemon logs: the simulated kernel log
 * (`kernel: true`) and every store that reached an attribute.
 */
import { pino, type Logger, type Level } from 'pino'
import { createRequire } from 'node:module'
import { formatKlog, type KernelLog, type KlogLevel, type KlogRecord, type UeventLog } from '../lib/events.js'
import type { StoreRecord } from '../lib/sysfs.js'

export type { Logger }
export type LogFormat = 'json' | 'pretty'
export const LOG_LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export interface LogOptions {
  level?: string
  /** Default: pretty when `fd` is a TTY, JSON otherwise. */
  format?: LogFormat
  /** Where to write; stderr by default. */
  fd?: number
}

export function createLogger (opts: LogOptions = {}): Logger {
  const fd = opts.fd ?? 2
  const level = opts.level ?? 'info'
  if (!LOG_LEVELS.includes(level)) throw new Error(`unknown log level ${JSON.stringify(level)} (one of ${LOG_LEVELS.join(', ')})`)
  const format = opts.format ?? (process.stderr.isTTY && fd === 2 ? 'pretty' : 'json')
  // Synchronous writes: a daemon that dies must not lose the lines that explain why.
  const stream = format === 'pretty'
    ? (createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty'))({ destination: fd, sync: true, colorize: process.stderr.isTTY && fd === 2, ignore: 'pid,hostname' })
    : pino.destination({ dest: fd, sync: true })
  return pino({ name: 'apsim', level: level as Level, base: { pid: process.pid } }, stream)
}

const KLOG_LEVEL: Record<KlogLevel, 'error' | 'warn' | 'info'> = { err: 'error', warn: 'warn', notice: 'info', info: 'info' }

/** Logs the kernel log records so far, then each one as it is emitted; returns the unsubscribe function. */
export function logKernel (log: Logger, klog: KernelLog): () => void {
  const emit = (r: KlogRecord): void => { log[KLOG_LEVEL[r.level]]({ kernel: true, seq: r.seq, klevel: r.level }, formatKlog(r)) }
  for (const r of klog.records()) emit(r)
  return klog.subscribe(emit)
}

/** The Sysfs `onStore` hook: one line per store with its path, bytes and result. */
export function storeLogger (log: Logger): (r: StoreRecord) => void {
  return r => {
    const result = r.ok ? 'ok' : r.errno ?? 'error'
    const label = r.injected === undefined ? '' : ` (injected by fault rule ${r.injected})`
    log.info({ store: r.path, data: r.data, result, why: r.why, injected: r.injected }, `store ${r.path} ${JSON.stringify(r.data)} -> ${result}${label}`)
  }
}

/** Every injected fault (open, read or write) as a warning, so nobody mistakes it for a model bug. */
export function logFaults (log: Logger, uevents: UeventLog): void {
  uevents.subscribe(e => {
    if (e.action !== 'fault') return
    const env = Object.fromEntries(e.env)
    log.warn({ fault: env.APSIM_INJECTED, op: env.OP, path: e.devpath, errno: env.ERRNO }, `fault injected: ${env.OP} ${e.devpath} -> ${env.ERRNO} (${env.APSIM_INJECTED})`)
  })
}
