/**
 * The simulated host's uevents reach udev listeners inside apsim's namespace, and only there:
 * `udevadm monitor --udev --property` (sd-device-monitor) and pyudev (libudev) inside
 * `apsim run` see every event `apsim events -p` shows, with udevd's USEC_INITIALIZED; their
 * in-kernel subsystem filters match (the header's hashes are right); a listener in the host's
 * namespace hears nothing; a listener that never reads loses events (ENOBUFS) without holding
 * anything up; --share-net and --env-only deliver nothing.
 */
import { spawn } from 'node:child_process'
import test from 'ava'
import { apsimRun, ensureClients } from '../helpers/clients.js'
import { CLI, run } from '../helpers/mount.js'

const U = '62177883-f1bb-47f0-914d-32a22e3a8804'
const RELAY = new URL('../../../mount-scripts/udev-relay.pl', import.meta.url).pathname
/** Debian's python3, which has python3-pyudev (install-clients.sh installs it). */
const PYTHON = '/usr/bin/python3'

/** Starts `udevadm monitor ARGS` into $T/NAME in the background and waits until it listens. */
const MONITOR = `
T=$(mktemp -d)
monitor () { local name=$1; shift; udevadm monitor "$@" > "$T/$name" 2>&1 & until grep -q '^UDEV - \\|^KERNEL - ' "$T/$name"; do sleep 0.05; done; }
C=$APSIM_ROOT/kernel/debug/apsim
`

/** A card added, its queues bound to vfio_ap, an mdev created and removed, a synthetic change. */
const OPERATIONS = `
echo "add-adapter 7 CEX7 cca" > $C/lpar
echo -7 > /sys/bus/ap/apmask
echo ${U} > /sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create
echo 1 > /sys/devices/vfio_ap/matrix/${U}/remove
echo change > /sys/devices/ap/card04/uevent
`

/**
 * The events of a `udevadm monitor --property` or `apsim events -p` output, keyed by SEQNUM.
 * Split at the head lines: a value may end in a newline (APMASK=), which prints a blank line.
 */
function events (text: string): Map<number, { head: string, props: string[] }> {
  const out = new Map<number, { head: string, props: string[] }>()
  for (const block of text.split(/^(?=(?:UDEV|KERNEL|APSIM) *\[)/m)) {
    const [head, ...props] = block.split('\n').filter(l => l !== '')
    const seq = props.find(p => p.startsWith('SEQNUM='))
    if (seq !== undefined) out.set(Number(seq.slice(7)), { head: head.replace(/^\w+ *\[[\d.]+\] */, ''), props })
  }
  return out
}

let session: { first: number, monitor: string, kernelEvents: string, filtered: string, mdevOnly: string, pyudev: string }

test.before(async t => {
  await ensureClients(t)
  const r = await apsimRun(`${MONITOR}
monitor all --udev --property
monitor cards --udev --subsystem-match=ap/ap_card
monitor mdev --udev --subsystem-match=mdev
${PYTHON} -c '
import pyudev, sys
mon = pyudev.Monitor.from_netlink(pyudev.Context(), "udev")
mon.filter_by("mdev")
mon.start()
print("listening", flush=True)
for dev in iter(mon.poll, None):
    print(dev.action, dev.device_path, dev.subsystem, dev.properties.get("MDEV_TYPE"), dev.properties.get("SEQNUM"), flush=True)
    if dev.action == "remove": break
' > $T/pyudev 2>&1 &
until grep -q listening $T/pyudev; do sleep 0.05; done
lastseq () { tail -1 $C/uevents | grep -o '"seq":[0-9]*' | grep -o '[0-9]*$'; }
first=$(( $(lastseq) + 1 ))
${OPERATIONS}
last=$(lastseq)
# Every store above returned once its events were broadcast: the listeners have them queued.
until grep -q "^SEQNUM=$last$" $T/all; do sleep 0.05; done
sleep 0.2
kill %1 %2 %3 2>/dev/null; wait %4
echo "=== first"; echo $first
echo "=== kernel"; node "$CLI" events "$APSIM_ROOT" -p
for f in all cards mdev pyudev; do echo "=== $f"; cat $T/$f; done
`, [], { CLI })
  t.is(r.code, 0, r.stderr)
  const part = (name: string): string => {
    const m = new RegExp(`^=== ${name}\\n([\\s\\S]*?)(?=^=== |(?![\\s\\S]))`, 'm').exec(r.stdout)
    if (m === null) throw new Error(`no ${name} section in:\n${r.stdout}`)
    return m[1]
  }
  session = { first: Number(part('first')), kernelEvents: part('kernel'), monitor: part('all'), filtered: part('cards'), mdevOnly: part('mdev'), pyudev: part('pyudev') }
})

test('udevadm monitor --udev shows every event apsim events shows, with the same properties and USEC_INITIALIZED', t => {
  const kernel = new Map([...events(session.kernelEvents)].filter(([seq]) => seq >= session.first))
  const udev = events(session.monitor)
  t.is(kernel.size, 25) // 11 for the card (and BINDINGS=complete), 9 for the apmask write, 4 for the mdev, 1 synthetic
  t.deepEqual([...udev.keys()], [...kernel.keys()], 'the same events, in the same order')
  for (const [seq, k] of kernel) {
    const u = udev.get(seq)!
    t.is(u.head, k.head)
    t.regex(u.props.at(-1)!, /^USEC_INITIALIZED=\d+$/)
    t.deepEqual(u.props.slice(0, -1), k.props, `event ${seq}`)
  }
})

/** The properties udevadm printed for the event whose first lines are `head`. */
function propsOf (head: string): string {
  for (const e of events(session.monitor).values()) if (e.head === head) return e.props.join('\n')
  throw new Error(`no event ${head}`)
}

test('a card added to the LPAR: its add event as udev sends it', t => {
  t.regex(propsOf('add      /devices/ap/card07 (ap)'), new RegExp(`^${[
    'ACTION=add', 'DEVPATH=/devices/ap/card07', 'SUBSYSTEM=ap', 'DEVTYPE=ap_card', 'DEV_TYPE=000D', 'MODALIAS=ap:t0D', 'MODE=cca', 'SEQNUM=\\d+', 'USEC_INITIALIZED=\\d+'
  ].join('\n')}$`))
})

test('a queue bound to vfio_ap, keeping the USEC_INITIALIZED of its add', t => {
  const add = /USEC_INITIALIZED=(\d+)/.exec(propsOf('add      /devices/ap/card07/07.0047 (ap)'))![1]
  const binds = [...events(session.monitor).values()].filter(e => e.head === 'bind     /devices/ap/card07/07.0047 (ap)')
  t.is(binds.length, 2) // cex4queue when the card came, vfio_ap after the apmask write
  t.is(binds[1].props.join('\n'), [
    'ACTION=bind', 'DEVPATH=/devices/ap/card07/07.0047', 'SUBSYSTEM=ap', 'DEVTYPE=ap_queue', 'DRIVER=vfio_ap', 'MODE=cca',
    binds[1].props.find(p => p.startsWith('SEQNUM='))!, `USEC_INITIALIZED=${add}`
  ].join('\n'))
})

test('an mdev created and removed: add, bind, unbind, remove', t => {
  const mdevs = [...events(session.monitor).values()].filter(e => e.head.includes(`/devices/vfio_ap/matrix/${U} (mdev)`))
  t.deepEqual(mdevs.map(e => e.head.split(' ')[0]), ['add', 'bind', 'unbind', 'remove'])
  t.regex(mdevs[0].props.join('\n'), new RegExp(`^ACTION=add\nDEVPATH=/devices/vfio_ap/matrix/${U}\nSUBSYSTEM=mdev\nMDEV_TYPE=passthrough\nSEQNUM=\\d+\nUSEC_INITIALIZED=\\d+$`))
  t.regex(mdevs[3].props.join('\n'), new RegExp(`^ACTION=remove\nDEVPATH=/devices/vfio_ap/matrix/${U}\nSUBSYSTEM=mdev\nMDEV_TYPE=passthrough\nSEQNUM=\\d+\nUSEC_INITIALIZED=\\d+$`))
})

test('a synthetic change written to a uevent file', t => {
  t.regex(propsOf('change   /devices/ap/card04 (ap)'), new RegExp(`^${[
    'ACTION=change', 'DEVPATH=/devices/ap/card04', 'SUBSYSTEM=ap', 'SYNTH_UUID=0', 'DEVTYPE=ap_card', 'DRIVER=cex4card', 'DEV_TYPE=000B', 'MODALIAS=ap:t0B', 'MODE=cca', 'SEQNUM=\\d+', 'USEC_INITIALIZED=\\d+'
  ].join('\n')}$`))
})

test('subscribers\' in-kernel filters match on the header\'s subsystem and devtype hashes', t => {
  const heads = (text: string): string[] => text.split('\n').filter(l => /^UDEV +\[/.test(l)).map(l => l.replace(/^UDEV *\[[\d.]+\] */, ''))
  t.deepEqual(heads(session.filtered), ['add      /devices/ap/card07 (ap)', 'bind     /devices/ap/card07 (ap)', 'change   /devices/ap/card04 (ap)'])
  t.deepEqual(heads(session.mdevOnly).map(h => h.split(' ')[0]), ['add', 'bind', 'unbind', 'remove'])
})

test('pyudev (libudev\'s udev_monitor) receives the mdev\'s events with their properties', t => {
  const lines = session.pyudev.trim().split('\n').slice(1)
  t.deepEqual(lines.map(l => l.split(' ').slice(0, 4).join(' ')), ['add', 'bind', 'unbind', 'remove'].map(a =>
    `${a} /devices/vfio_ap/matrix/${U} mdev passthrough`))
})

test('a listener in the host\'s network namespace hears nothing of the simulated host', async t => {
  await ensureClients(t)
  const listeners = [
    spawn('udevadm', ['monitor', '--udev', '--kernel'], { stdio: ['ignore', 'pipe', 'pipe'] }),
    spawn(PYTHON, ['-c', 'import pyudev\nm = pyudev.Monitor.from_netlink(pyudev.Context(), "udev")\nm.start()\nprint("listening", flush=True)\nfor d in iter(m.poll, None): print(d.action, d.device_path, flush=True)'], { stdio: ['ignore', 'pipe', 'pipe'] })
  ]
  const heard = listeners.map(p => { let s = ''; p.stdout!.setEncoding('utf8').on('data', (d: string) => { s += d }); return () => s })
  try {
    for (const h of heard) while (!/^(monitor will print|listening)/m.test(h())) await new Promise(resolve => setTimeout(resolve, 50))
    for (const opts of [[], ['--share-net'], ['--env-only']]) {
      const root = opts.includes('--env-only') ? '$SYSFS_ROOT' : '/sys'
      const r = await apsimRun(`echo -5,-6 > ${root}/bus/ap/apmask; echo ${U} > ${root}/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create; echo change > ${root}/devices/ap/card04/uevent`, opts)
      t.is(r.code, 0, r.stderr)
      if (opts.includes('--share-net')) t.regex(r.stderr, /--share-net: .*udev listeners get no events/)
    }
    await new Promise(resolve => setTimeout(resolve, 500))
    for (const h of heard) t.notRegex(h(), /\/devices\/(ap|vfio_ap)\b/)
  } finally {
    for (const p of listeners) p.kill()
  }
})

test('the relay refuses to run in the network namespace apsim was started from', async t => {
  const host = (await run('readlink', ['/proc/self/ns/net'])).stdout.trim()
  const r = await run('perl', [RELAY, '/nonexistent.sock', host])
  t.is(r.code, 1)
  t.regex(r.stderr, /^udev-relay: refusing to relay in the network namespace apsim was started from \(net:\[\d+\]\)$/m)
})

test('a listener that never reads loses events (ENOBUFS); stores, the relay and other listeners go on', async t => {
  await ensureClients(t)
  // A raw netlink socket on the udev group with a tiny buffer, never read until the end; 200
  // apmask writes make 200 change events on /devices/ap and 1,600 unbind/bind events.
  const r = await apsimRun(`${MONITOR}
${PYTHON} -c '
import socket, sys, errno, os, time
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 15)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind((0, 2))
print("listening", flush=True)
while not os.path.exists(sys.argv[1]): time.sleep(0.05)
try:
    s.recv(8192); print("no overrun")
except OSError as e:
    print(errno.errorcode[e.errno])
' $T/go > $T/stalled 2>&1 &
until grep -q listening $T/stalled; do sleep 0.05; done
monitor all --udev -s ap
for i in $(seq 100); do echo -5 > /sys/bus/ap/apmask; echo +5 > /sys/bus/ap/apmask; done
touch $T/go; wait %1
sleep 0.2; kill %2
tail -1 $T/stalled
grep -c '^UDEV .* change ' $T/all
`)
  t.is(r.code, 0, r.stderr)
  t.deepEqual(r.stdout.trim().split('\n'), ['ENOBUFS', '200'])
})

test('a relay that stops answering holds one store up (at most a second), then none; the mount goes on', async t => {
  // 200 event-making stores: were each held up, the test would run out of time.
  const r = await apsimRun(`
relay=$(for p in $(pgrep -f '^perl .*/udev-relay\.pl '); do [ "$(readlink /proc/$p/ns/net)" = "$(readlink /proc/self/ns/net)" ] && echo $p; done)
kill -STOP $relay
for i in $(seq 100); do echo -5 > /sys/bus/ap/apmask; echo +5 > /sys/bus/ap/apmask; done
cat /sys/bus/ap/apmask
kill -CONT $relay
`)
  t.is(r.code, 0, r.stderr)
  t.is(r.stdout, '0x' + 'f'.repeat(64) + '\n')
})
