/**
 * The bench's client loops, each run in a process of its own (a process must never access a
 * FUSE mount it serves, and the loops must not share an event loop with the orchestrator).
 * Prints one JSON object on stdout.
 *
 * The latency loops take several targets and alternate between them op by op (rotating the
 * order each iteration), so that each target sees the same machine state: on a 2-vCPU VM a
 * FUSE round trip costs 120 or 650 µs depending on where the threads land (fuse.md §8.2), and
 * only targets measured side by side compare. They print one summary per target.
 *
 *   client.js read N PATH...              fs.readFileSync loops (after a warm-up)
 *   client.js cat N PATH...               spawn `cat PATH`
 *   client.js store N PATH DATA [PATH DATA ...] [-- PATH DATA ...]...
 *                                         fs.writeFileSync; each group cycles through its pairs
 *   client.js writes FILE                 each [path, data] of the JSON list in FILE, once (`all`: every latency)
 *   client.js readfor PATH START_MS DURATION_MS   reads from START_MS (epoch) for DURATION_MS; the count
 */
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { summarise } from './stats.js'

const now = (): bigint => process.hrtime.bigint()
const usSince = (t: bigint): number => Number(now() - t) / 1e3

/** n iterations; each runs op once for every target, in an order that rotates. */
function loop (n: number, warm: number, targets: number, op: (target: number, i: number) => void): Array<ReturnType<typeof summarise> & { all: number[] }> {
  for (let i = 0; i < warm; i++) for (let k = 0; k < targets; k++) op(k, i)
  const lat = Array.from({ length: targets }, () => new Array<number>(n))
  const total = new Array<number>(targets).fill(0)
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < targets; j++) {
      const k = (i + j) % targets
      const a = now()
      op(k, i)
      const t = usSince(a)
      lat[k][i] = t
      total[k] += t
    }
  }
  return lat.map((l, k) => ({ ...summarise(l, total[k] / 1e6), all: l }))
}
const brief = (rs: Array<ReturnType<typeof loop>[number]>): unknown => rs.map(({ all: _, ...r }) => r)

function main (argv: string[]): unknown {
  const [mode, ...a] = argv
  switch (mode) {
    case 'read': {
      const [n, paths] = [Number(a[0]), a.slice(1)]
      return brief(loop(n, Math.min(200, n), paths.length, k => readFileSync(paths[k])))
    }
    case 'cat': {
      const [n, paths] = [Number(a[0]), a.slice(1)]
      return brief(loop(n, 5, paths.length, k => {
        const c = spawnSync('cat', [paths[k]], { stdio: ['ignore', 'pipe', 'pipe'] })
        if (c.status !== 0) throw new Error(`cat ${paths[k]}: ${c.stderr.toString()}`)
      }))
    }
    case 'store': {
      const n = Number(a[0])
      const groups: Array<Array<[string, string]>> = [[]]
      for (let i = 1; i < a.length;) {
        if (a[i] === '--') { groups.push([]); i++; continue }
        groups[groups.length - 1].push([a[i], a[i + 1]])
        i += 2
      }
      return brief(loop(n, 10, groups.length, (k, i) => { const g = groups[k]; writeFileSync(g[i % g.length][0], g[i % g.length][1]) }))
    }
    case 'writes': {
      const list = JSON.parse(readFileSync(a[0], 'utf8')) as Array<[string, string]>
      return loop(list.length, 0, 1, (_k, i) => writeFileSync(list[i][0], list[i][1]))[0]
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
