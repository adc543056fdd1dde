/**
 * Small helpers shared by the bench programs: percentiles, the machine description, number
 * formatting. No I/O beyond reading /proc.
 */
import { readFileSync } from 'node:fs'
import os from 'node:os'

/** The q-quantile (0..1) of an ascending array (nearest rank). */
export function quantile (sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]
}

export function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

export interface Latency { n: number, p50: number, p99: number, opsPerSec: number }

/** Latencies in µs (unsorted) and the wall time in s they took. */
export function summarise (lat: number[], seconds: number): Latency {
  const s = [...lat].sort((a, b) => a - b)
  return { n: s.length, p50: quantile(s, 0.5), p99: quantile(s, 0.99), opsPerSec: s.length / seconds }
}

export interface Machine { cpu: string, nproc: number, kernel: string, node: string, memory: string }

export function machine (): Machine {
  let cpu = os.cpus()[0]?.model ?? 'unknown'
  try {
    const m = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))
    if (m !== null) cpu = m[1]
  } catch { /* not Linux */ }
  return {
    cpu,
    nproc: os.availableParallelism(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`
  }
}

/** µs with a sensible number of digits. */
export function us (v: number): string {
  if (!Number.isFinite(v)) return '–'
  if (v >= 100000) return `${(v / 1000).toFixed(0)} ms`
  if (v >= 10000) return `${(v / 1000).toFixed(1)} ms`
  if (v >= 100) return `${v.toFixed(0)} µs`
  return `${v.toFixed(1)} µs`
}

/** ms with a sensible number of digits. */
export function ms (v: number): string {
  if (!Number.isFinite(v)) return '–'
  if (v >= 10000) return `${(v / 1000).toFixed(1)} s`
  if (v >= 100) return `${v.toFixed(0)} ms`
  if (v >= 10) return `${v.toFixed(1)} ms`
  return `${v.toFixed(2)} ms`
}

export function ratio (a: number, b: number): string {
  return Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : '–'
}
