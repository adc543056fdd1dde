/**
 * `udevadm info` (systemd 252's libudev, no udevd, no udev database) on the simulated tree
 * through `apsim run`: a card, a queue, the matrix device and an mdev, as devices with their
 * uevent properties, and the attribute walk up the parents.
 */
import test from 'ava'
import { apsimRun, ensureClients } from '../helpers/clients.js'

const U = '62177883-f1bb-47f0-914d-32a22e3a8804'

const SCRIPT = `
echo -5,-6 > /sys/bus/ap/apmask
echo ${U} > /sys/devices/vfio_ap/matrix/mdev_supported_types/vfio_ap-passthrough/create
section () { echo "=== $1"; shift; "$@" 2>&1 || echo "(status $?)"; }
section card udevadm info /sys/devices/ap/card04
section queue udevadm info /sys/devices/ap/card04/04.0047
section vfio-queue udevadm info -p /devices/ap/card05/05.00ab
section matrix udevadm info /sys/devices/vfio_ap/matrix
section mdev udevadm info /sys/bus/mdev/devices/${U}
section bus-link udevadm info -q path /sys/bus/ap/devices/card06
section walk udevadm info -a /sys/devices/ap/card04/04.0047
section db udevadm info --export-db
section unverified env -u SYSTEMD_DEVICE_VERIFY_SYSFS udevadm info /sys/devices/ap/card04
`

let sections: Map<string, string>

test.before(async t => {
  await ensureClients(t)
  const r = await apsimRun(SCRIPT)
  if (r.code !== 0) throw new Error(`udevadm session failed (status ${r.code}):\n${r.stdout}\n${r.stderr}`)
  sections = new Map()
  for (const part of r.stdout.split(/^=== /m).slice(1)) {
    const nl = part.indexOf('\n')
    sections.set(part.slice(0, nl), part.slice(nl + 1))
  }
})

const section = (title: string): string => sections.get(title) ?? `(no section ${title})`

test('udevadm info on a card: its devpath, subsystem, type, driver and uevent variables', t => {
  t.is(section('card'), `P: /devices/ap/card04
M: card04
R: 04
U: ap
T: ap_card
V: cex4card
E: DEVPATH=/devices/ap/card04
E: SUBSYSTEM=ap
E: DEVTYPE=ap_card
E: DRIVER=cex4card
E: DEV_TYPE=000B
E: MODALIAS=ap:t0B
E: MODE=cca

`)
})

test('udevadm info on a queue, bound to cex4queue and to vfio_ap', t => {
  t.is(section('queue'), `P: /devices/ap/card04/04.0047
M: 04.0047
R: 0047
U: ap
T: ap_queue
V: cex4queue
E: DEVPATH=/devices/ap/card04/04.0047
E: SUBSYSTEM=ap
E: DEVTYPE=ap_queue
E: DRIVER=cex4queue
E: MODE=cca

`)
  t.regex(section('vfio-queue'), /^V: vfio_ap\n[^]*^E: DRIVER=vfio_ap\n/m)
})

test('udevadm info on the matrix device and an mdev', t => {
  t.is(section('matrix'), `P: /devices/vfio_ap/matrix
M: matrix
U: matrix
V: vfio_ap
E: DEVPATH=/devices/vfio_ap/matrix
E: SUBSYSTEM=matrix
E: DRIVER=vfio_ap

`)
  t.is(section('mdev'), `P: /devices/vfio_ap/matrix/${U}
M: ${U}
R: 8804
U: mdev
V: vfio_ap_mdev
E: DEVPATH=/devices/vfio_ap/matrix/${U}
E: SUBSYSTEM=mdev
E: DRIVER=vfio_ap_mdev
E: MDEV_TYPE=passthrough

`)
})

test('the bus link leads udevadm to the device; the attribute walk climbs to the card', t => {
  t.is(section('bus-link'), '/devices/ap/card06\n')
  const walk = section('walk')
  t.regex(walk, /looking at device '\/devices\/ap\/card04\/04\.0047':\n\s+KERNEL=="04\.0047"\n\s+SUBSYSTEM=="ap"\n\s+DRIVER=="cex4queue"\n/)
  t.regex(walk, /ATTR\{online\}=="1"/)
  t.regex(walk, /looking at parent device '\/devices\/ap\/card04':\n\s+KERNELS=="card04"\n\s+SUBSYSTEMS=="ap"\n\s+DRIVERS=="cex4card"\n/)
  t.regex(walk, /ATTRS\{hwtype\}=="11"/)
  t.regex(walk, /ATTRS\{type\}=="CEX5C"/)
})

test('udevadm info --export-db enumerates every card, queue, the matrix device, the mdev and zcrypt\'s z90crypt', t => {
  const devpaths = section('db').split('\n').filter(l => l.startsWith('P: ')).map(l => l.slice(3)).sort()
  const expected = ['04', '05', '06'].flatMap(a => [`/devices/ap/card${a}`, ...['0004', '0047', '00ab', '00ff'].map(d => `/devices/ap/card${a}/${a}.${d}`)])
  t.deepEqual(devpaths, [...expected, '/devices/vfio_ap/matrix', `/devices/vfio_ap/matrix/${U}`, '/devices/virtual/misc/z90crypt'].sort())
})

test('without SYSTEMD_DEVICE_VERIFY_SYSFS=0 libudev refuses a /sys that is not sysfs (why apsim run exports it)', t => {
  t.is(section('unverified'), 'Unknown device "/sys/devices/ap/card04": No such device\n(status 1)\n')
})
