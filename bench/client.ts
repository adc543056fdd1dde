/**
 * The bench's client loops, each run in a process of its own (a process must never access a
 * FUSE mount it serves, and the loops must not share an event loop with the orchestrator).
 * Prints one JSON object on stdout.
 *
 *   client.js read PATH N                 fs.readFileSync loop (after a warm-up)
 *   client.js cat PATH N                  spawn `cat PATH` N times
 *   client.js store N PATH DATA [PATH DATA ...]   fs.writeFileSync, cycling through the pairs
 *   client.js writes FILE                 each [path, data] of the JSON list in FILE, once (`all`: every latency)
 *   client.js readfor PATH START_MS DURATION_MS   reads from START_MS (epoch) for DURATION_MS; the count
 */
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { summarise } from './stats.js'

const now = (): bigint => process.hrtime.bigint()
const usSince = (t: bigint): number => Number(now() - t) / 1e3

function loop (n: number, warm: number, op: (i: number) => void): ReturnType<typeof summarise> & { all: number[] } {
  for (let i = 0; i < warm; i++) op(i)
  const lat = new Array<number>(n)
  const t0 = now()
  for (let i = 0; i < n; i++) {
    const a = now()
    op(i)
    lat[i] = usSince(a)
  }
  return { ...summarise(lat, usSince(t0) / 1e6), all: lat }
}

function main (argv: string[]): unknown {
  const [mode, ...a] = argv
  switch (mode) {
    case 'read': {
      const [p, n] = [a[0], Number(a[1])]
      const { all: _, ...r } = loop(n, Math.min(200, n), () => readFileSync(p))
      return r
    }
    case 'cat': {
      const [p, n] = [a[0], Number(a[1])]
      const { all: _, ...r } = loop(n, 5, () => {
        const c = spawnSync('cat', [p], { stdio: ['ignore', 'pipe', 'pipe'] })
        if (c.status !== 0) throw new Error(`cat ${p}: ${c.stderr.toString()}`)
      })
      return r
    }
    case 'store': {
      const n = Number(a[0])
      const pairs: Array<[string, string]> = []
      for (let i = 1; i + 1 < a.length; i += 2) pairs.push([a[i], a[i + 1]])
      const { all: _, ...r } = loop(n, 10 * pairs.length, i => writeFileSync(pairs[i % pairs.length][0], pairs[i % pairs.length][1]))
      return r
    }
    case 'writes': {
      const list = JSON.parse(readFileSync(a[0], 'utf8')) as Array<[string, string]>
      return loop(list.length, 0, i => writeFileSync(list[i][0], list[i][1]))
    }
    case 'readfor': {
      const [p, startAt, duration] = [a[0], Number(a[1]), Number(a[2])]
      while (Date.now() < startAt) { /* the readers start together */ }
      const end = startAt + duration
      let count = 0
      const t0 = now()
      while (Date.now() < end) {
        readFileSync(p)
        count++
      }
      return { count, seconds: usSince(t0) / 1e6 }
    }
    default:
      throw new Error(`unknown mode ${String(mode)}`)
  }
}

process.stdout.write(JSON.stringify(main(process.argv.slice(2))) + '\n')
