/**
 * The udev feed: each uevent of the simulated kernel, as the libudev message udevd would
 * broadcast, streamed to the relays (mount-scripts/udev-relay.pl) that apsim starts inside the
 * network namespaces it made. The daemon itself never sends netlink: a socket belongs to the
 * namespace it was made in, and the daemon's is the host's, whose listeners must never hear of
 * simulated devices.
 *
 * The feed is a Unix socket (a path: reachable from any network namespace) beside the mount's
 * runtime record, mode 0600. Frames are a 4-byte big-endian length and the message; an empty
 * frame, sent first, says the relay is subscribed. The relay answers one byte per message it
 * broadcast: the kernel broadcasts a uevent before the write(2) that caused it returns, and
 * tools rely on that (libvirt looks for a new mdev once `mdevctl start` returned, then sleeps
 * 5 s), so the FUSE adapter answers a store once its events were broadcast (`delivered`).
 * The daemon never waits on a relay for long: a relay that falls more than FEED_BACKLOG_MAX
 * bytes behind loses events, as a listener that does not read loses them in the kernel
 * (ENOBUFS), and a store waits at most DELIVERY_WAIT_MS.
 */
import { createHash } from 'node:crypto'
import { chmodSync, unlinkSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import type { Uevent, UeventLog } from '../lib/events.js'
import { UdevDatabase } from '../lib/udev.js'
import type { Logger } from './log.js'
import { ensureRunDir, errCode, RUN_DIR } from './runtime.js'

const FEED_BACKLOG_MAX = 4 * 1024 * 1024
const DELIVERY_WAIT_MS = 1000

/** The feed socket of the mount at `dir` (canonical); mount-scripts/apsim-ns.sh finds it the same way. */
export const feedSocket = (dir: string): string =>
  path.join(RUN_DIR, `udev-${createHash('sha256').update(dir).digest('hex').slice(0, 16)}.sock`)

const frame = (payload: Uint8Array): Buffer => {
  const b = Buffer.allocUnsafe(4 + payload.length)
  b.writeUInt32BE(payload.length, 0)
  b.set(payload, 4)
  return b
}

export interface UdevFeed {
  /** Undefined when every event so far was broadcast; else settles once they are (or soon). */
  delivered: () => Promise<void> | undefined
  close: () => void
}

/** A relay, how many messages it was sent and broadcast, and whether it failed to keep up. */
interface Relay { sock: net.Socket, sent: number, acked: number, stalled: boolean }

/**
 * Serves the feed of `uevents` at `socketPath`. udevd's memory of devices (when each was
 * initialized) is kept while a relay listens, learnt afresh from the kept records when the
 * first one connects: a host nobody relays pays nothing per event.
 */
export async function serveUdevFeed (uevents: UeventLog, socketPath: string, log: Logger): Promise<UdevFeed> {
  const relays = new Set<Relay>()
  let db: UdevDatabase | undefined
  let unsubscribe: (() => void) | undefined
  let warnedDrop = false
  let waiters: Array<() => void> = []
  // A relay that kept a store waiting DELIVERY_WAIT_MS is not waited for again until it caught up.
  const pending = (): boolean => { for (const r of relays) if (r.acked < r.sent && !r.stalled) return true; return false }
  const wake = (): void => {
    if (pending()) return
    const w = waiters
    waiters = []
    for (const fn of w) fn()
  }
  const send = (e: Uevent): void => {
    const msg = db!.message(e)
    if (msg === undefined) return
    const f = frame(msg)
    for (const r of relays) {
      if (r.sock.writableLength > FEED_BACKLOG_MAX) {
        if (!warnedDrop) log.warn({ feed: socketPath }, 'a udev relay does not keep up: events dropped')
        warnedDrop = true
        continue
      }
      r.sock.write(f)
      r.sent++
    }
  }
  const server = net.createServer(sock => {
    const relay: Relay = { sock, sent: 0, acked: 0, stalled: false }
    sock.on('error', () => { /* a relay that went away */ })
    sock.on('close', () => {
      relays.delete(relay)
      if (relays.size === 0) { unsubscribe?.(); unsubscribe = undefined; db = undefined }
      wake()
    })
    sock.on('data', (d: Buffer) => {
      relay.acked += d.length
      if (relay.acked >= relay.sent) relay.stalled = false
      wake()
    })
    if (relays.size === 0) {
      db = new UdevDatabase(uevents.records())
      unsubscribe = uevents.subscribe(send)
    }
    relays.add(relay)
    sock.write(frame(new Uint8Array(0)))
    log.debug({ feed: socketPath }, 'a udev relay subscribed')
  })
  ensureRunDir()
  try { unlinkSync(socketPath) } catch (e) { if (errCode(e) !== 'ENOENT') throw e }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(socketPath, () => { server.off('error', reject); resolve() })
  })
  chmodSync(socketPath, 0o600)
  server.unref()
  return {
    delivered: () => {
      if (!pending()) return undefined
      return new Promise<void>(resolve => {
        const timer = setTimeout(() => {
          for (const r of relays) {
            if (r.acked < r.sent && !r.stalled) {
              r.stalled = true
              log.warn({ feed: socketPath, behind: r.sent - r.acked }, 'a udev relay does not answer: stores no longer wait for it')
            }
          }
          wake()
          resolve()
        }, DELIVERY_WAIT_MS)
        waiters.push(() => { clearTimeout(timer); resolve() })
      })
    },
    close: () => {
      for (const r of relays) r.sock.destroy()
      server.close()
      try { unlinkSync(socketPath) } catch { /* gone already */ }
    }
  }
}
