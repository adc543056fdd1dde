/**
 * Running the conformance suite under an older kernel profile (lib/profiles.ts).
 *
 * `APSIM_KERNEL=5.10 ava build/test/conformance/*.test.js build/test/daemon/fuse.test.js`
 * mounts every host with that profile (test/helpers/mount.ts passes `--kernel` unless the
 * topology names its own kernel) and expects the tests listed for it in EXPECTED_DIFFERENCES —
 * and only those — to fail: they are registered as `test.failing`, so a listed test that
 * starts passing fails the run too (the table must then shrink). The conformance files import `test` from here instead of
 * from ava; under the newest profile it is ava's `test` itself.
 */
import avaTest, { type TestFn } from 'ava'

export type { ExecutionContext, TestFn } from 'ava'

/** The profile the mounts run under. */
export const KERNEL = process.env.APSIM_KERNEL ?? 'newest'

/**
 * Per profile: the title of every test that fails there (as ava prints it) → why: the switch
 * of lib/profiles.ts whose older value explains the difference. The one place the suite's
 * expected differences are declared.
 */
export const EXPECTED_DIFFERENCES: Record<string, Record<string, string>> = {
  '5.10': {
    'Erratum 2 (interrupts off) echo disable > bus/ap/poll_thread after `echo 1 > bus/ap/poll_thread` → reads "0\\n"':
      'apFeatures64 (6.4): poll_thread is parsed with sscanf("%d"), "disable" is EINVAL; boolEnableDisable (≈6.16): no d/D',
    'Erratum 2 (interrupts off) echo enable > bus/ap/poll_thread → reads "1\\n"':
      'apFeatures64 (6.4): poll_thread is parsed with sscanf("%d"), "enable" is EINVAL; boolEnableDisable (≈6.16): no e/E',
    'Erratum 3 /usr/bin/printf \'\\nvfio_ap\' > bus/ap/devices/03.0004/driver_override after `echo vfio_ap > bus/ap/devices/03.0004/driver_override` → reads "\\n"':
      'driverOverride (6.19): no queue driver_override',
    'Erratum 3 /usr/bin/printf \'a\\nb\' > bus/ap/devices/03.0004/driver_override → reads "a\\n"':
      'driverOverride (6.19): no queue driver_override',
    'Erratum 3 printf \'%4095s\' x > bus/ap/devices/03.0004/driver_override → EINVAL':
      'driverOverride (6.19): no queue driver_override',
    '§1.1 echo 1 > bus/ap/bindings_complete_count → EACCES':
      'driverOverride (6.19): no bus/ap/bindings_complete_count',
    '§1.1 echo 1 > bus/ap/features → EACCES':
      'apFeatures64 (6.4): no bus/ap/features',
    '§1.1 §2 §3.2 attribute modes as in sysfs; write-only files refuse reads':
      'scansAndBindings (5.12): no bus/ap/scans, bindings; apFeatures64 (6.4): no bus/ap/features; driverOverride (6.19): no bindings_complete_count, queue driver_override',
    '§1.3 (interrupts off) echo " 1" > bus/ap/poll_thread → EINVAL':
      'apFeatures64 (6.4): sscanf("%d") skips the blank: " 1" is accepted',
    '§1.3 (interrupts off) echo on > bus/ap/poll_thread → reads "1\\n"':
      'apFeatures64 (6.4): sscanf("%d"): "on" is EINVAL',
    '§1.3 echo +300000 > bus/ap/poll_timeout → reads "300000\\n"':
      'apFeatures64 (6.4): sscanf("%llu") takes no sign: "+300000" is EINVAL',
    '§1.3 echo 99999999999999999999 > bus/ap/poll_timeout → ERANGE':
      'apFeatures64 (6.4): sscanf("%llu"), not kstrtoull: EINVAL, not ERANGE',
    '§10.10 echo 0x41 > apmask reserves only adapters 1 and 7: all F1 queues go to vfio_ap':
      'scansAndBindings (5.12): reads bus/ap/bindings',
    '§10.15 echo > apmask clears the mask: every queue moves to vfio_ap':
      'scansAndBindings (5.12): reads bus/ap/bindings',
    '§10.20 echo -4,-0x47,-0xab,-0xff > aqmask moves domains 4 and 71 to vfio_ap':
      'scansAndBindings (5.12): reads bus/ap/bindings',
    '§10.21 (6.19+) the in-use check also refuses +5 when aqmask bit 4 is clear':
      'dynamicConfig (6.0): no vfio_ap in-use check on mask writes: +5 succeeds; driverOverride (6.19): the all-ones rule',
    '§10.21 echo +5 > apmask while 05.0004 is assigned to an mdev → EBUSY, logged once':
      'dynamicConfig (6.0): no vfio_ap in-use check on mask writes: +5 succeeds, nothing logged',
    '§10.22 a no-op mask write succeeds without rebinding':
      'scansAndBindings (5.12): writes bus/ap/scans, reads bindings; driverOverride (6.19): reads bindings_complete_count',
    '§10.25 echo 0 > bus/ap/poll_timeout → reads "0\\n"':
      'apFeatures64 (6.4): poll_timeout 0 is EINVAL before kstrtoull',
    '§10.25 echo 0x3d090 > bus/ap/poll_timeout after `echo 1000 > bus/ap/poll_timeout` → reads "250000\\n"':
      'apFeatures64 (6.4): sscanf("%llu") reads 0 from "0x3d090": EINVAL',
    '§10.25 echo 1.5 > bus/ap/poll_timeout → EINVAL':
      'apFeatures64 (6.4): sscanf("%llu") reads 1 from "1.5": accepted',
    '§10.26 (interrupts off) echo 0 > bus/ap/poll_thread after `echo y > bus/ap/poll_thread` → reads "0\\n"':
      'apFeatures64 (6.4): sscanf("%d"): "y" is EINVAL',
    '§10.26 (interrupts off) echo y > bus/ap/poll_thread → reads "1\\n"':
      'apFeatures64 (6.4): sscanf("%d"): "y" is EINVAL',
    '§10.27 any write to scans runs exactly one synchronous scan':
      'scansAndBindings (5.12): no bus/ap/scans',
    '§10.28 echo 1 > bus/ap/bindings → EACCES':
      'scansAndBindings (5.12): no bus/ap/bindings',
    '§10.29 card03 attributes (CEX8 CCA)':
      'maxKnownType (CEX8 = 14): hwtype 13, modalias ap:t0D, type CEX7C; chkstopAndMaxMsgSize (≈6.1): no chkstop, max_msg_size',
    '§10.31 (LPAR) card config=0 deconfigures the card and, after the scan, its queues':
      'scansAndBindings (5.12): writes bus/ap/scans',
    '§10.34 manual unbind/bind of a queue, and refused binds':
      'scansAndBindings (5.12): reads bus/ap/bindings',
    '§10.35 (6.19+) an override names the only driver that may bind':
      'driverOverride (6.19): no queue driver_override',
    '§10.35 driver_override moves a queue on reprobe and locks the masks':
      'driverOverride (6.19): no queue driver_override',
    '§10.36 echo vfio_ap > bus/ap/devices/03.0004/driver_override after `echo -0x47 > bus/ap/aqmask` → EINVAL':
      'driverOverride (6.19): no queue driver_override',
    '§10.36 echo vfio_ap > bus/ap/devices/03.0004/driver_override after `echo -5 > bus/ap/apmask` → EINVAL':
      'driverOverride (6.19): no queue driver_override',
    '§10.39 card uevent file':
      'maxKnownType (CEX8 = 14): DEV_TYPE=000D, MODALIAS=ap:t0D',
    '§10.4 without QCI: max ids 63/15, QCI masks "not supported", features "-"':
      'apFeatures64 (6.4): no bus/ap/features',
    '§10.40 an invalid ap.apmask=0xZZ leaves apmask all zeros':
      'scansAndBindings (5.12): reads bus/ap/bindings',
    '§10.40 ap.apmask=0xffff ap.aqmask=0x40 at boot':
      'scansAndBindings (5.12): reads bus/ap/bindings',
    '§10.5 features lists the QCI facility words in order':
      'apFeatures64 (6.4): no bus/ap/features',
    '§10.6 all 9 queues bound after boot; bindings complete once; at least one scan':
      'scansAndBindings (5.12): no bus/ap/bindings, scans; driverOverride (6.19): no bindings_complete_count',
    '§10.8 echo -5,-6 > apmask moves adapters 5 and 6 to vfio_ap, cards stay on cex4card':
      'maxKnownType (CEX8 = 14): card05/card06 are a CEX7P/CEX7A; queueStatus (5.17): no queue status; scansAndBindings (5.12): reads bus/ap/bindings',
    '§10.9 echo +5 > apmask (no mdev) brings adapter 5 back to cex4queue, online':
      'scansAndBindings (5.12): reads bus/ap/bindings',
    '§2.1 queue uevent files (no DEV_TYPE/MODALIAS on queues)':
      'maxKnownType (CEX8 = 14): card05 uevent DEV_TYPE=000D, MODALIAS=ap:t0D',
    '§2.2 card and queue ap_functions print 8 uppercase hex digits':
      'apFeatures64 (6.4): no queue ap_functions',
    '§3.3 unbind from the wrong driver and drivers_probe of an unknown name → ENODEV':
      'scansAndBindings (5.12): reads bus/ap/bindings',
    'ap-bus §10.32 adapter 6 leaves the LPAR configuration: card06 and 06.* disappear at the scan':
      'scansAndBindings (5.12): reads bus/ap/scans, bindings',
    'ap-bus §10.33 usage domain 0x20 joins the LPAR configuration: 03/05/06.0020 appear on cex4queue':
      'scansAndBindings (5.12): reads bus/ap/scans, bindings',
    'guests: a second mdev for a running guest is refused (EPERM), last_error says why, nothing changes':
      'queueStatus (5.17): reads queue status',
    'guests: stopping an unknown guest is refused, last_error says why, nothing changes':
      'queueStatus (5.17): reads queue status',
    'vfio-ap #35 queue status: in use (U1, guest) / assigned (U2, no guest) / unassigned (U3 removed)':
      'queueStatus (5.17): no queue status',
    'vfio-ap #36/#37 unbinding 06.00ab under a running guest unplugs adapter 6; binding it plugs it back':
      'dynamicConfig (6.0): no guest_matrix, no hot unplug/plug',
    'vfio-ap #38 all adapters filtered: guest_matrix keeps the domain-only form':
      'dynamicConfig (6.0): no guest_matrix, no filtering',
    'vfio-ap #39 a domain outside the host configuration is assigned but not passed through':
      'dynamicConfig (6.0): assign_domain is EBUSY while the guest is attached',
    'vfio-ap #40 over-provisioned adapter 7 is hot-plugged once, at scan completion, when the LPAR gains it':
      'dynamicConfig (6.0): assign_adapter is EBUSY while the guest is attached; no hot plug on config changes',
    'vfio-ap #41 adapter 6 leaves the LPAR configuration under a running guest':
      'dynamicConfig (6.0): no guest_matrix, no reaction to host configuration changes',
    'vfio-ap #42 unassigning adapter 6 under a running guest':
      'dynamicConfig (6.0): unassign_adapter is EBUSY while the guest is attached',
    'vfio-ap #45 remove blocks while the guest holds the mdev and completes when the guest stops':
      'removeBlocks (5.15): remove is EBUSY while the guest is attached; newLogWording (6.15): the guest keeps its AP configuration',
    'the guest view follows hot plug and unplug, and goes away when the guest stops':
      'dynamicConfig (6.0): assign_domain is EBUSY while the guest is attached, no hot plug',
    'the guest\'s writes go to its own kernel and never to the host; the host\'s hot plug still reaches it':
      'dynamicConfig (6.0): assign_domain is EBUSY while the guest is attached, no hot plug',
    'host hot unplug and replug of an adapter: the guest\'s queues come back unbound; the guest\'s state is in the host\'s snapshot':
      'dynamicConfig (6.0): unassign_adapter is EBUSY while the guest is attached, no hot unplug',
    'three guests of the documentation example each see exactly their cards and queues':
      'queueStatus (5.17): reads queue status',
    'first boot: add + bind for every card and queue, then INITSCAN=done, then BINDINGS=complete COMPLETECOUNT=1':
      'maxKnownType (CEX8 = 14): CEX8 cards have DEV_TYPE=000D; scansAndBindings (5.12): no INITSCAN, BINDINGS uevents',
    '§10.22 the second identical mask write sends no uevent':
      'maskChangeUevents (≈5.12): no APMASK uevent',
    '§10.32 adapter 6 leaves the configuration: remove events for its queues, then for the card':
      'maxKnownType (CEX8 = 14): card06 remove uevent has DEV_TYPE=000D, MODALIAS=ap:t0D',
    '§10.33 usage domain 0x20 joins: add + bind of 03/05/06.0020, then BINDINGS=complete COMPLETECOUNT=2':
      'scansAndBindings (5.12): no BINDINGS uevent',
    '§10.8 echo -5,-6 > apmask: one APMASK change on /devices/ap, unbind/bind of the six moved queues':
      'maskChangeUevents (≈5.12): no APMASK uevent',
    '#11 guest_matrix of U1 without a guest equals its matrix':
      'dynamicConfig (6.0): no guest_matrix',
    '#15 assigning an adapter that would share APQNs with U2: EADDRINUSE, logged on the assignee':
      'dynamicConfig (6.0): sharing is refused without a log line',
    '#17 a host-owned adapter is accepted while no domain is assigned; the domain is then refused':
      'dynamicConfig (6.0): EADDRNOTAVAIL meant "no queue of the adapter bound to vfio_ap" (no over-provisioning)',
    '#18 id limits: apm_max 63, aqm_max = adm_max 255':
      'dynamicConfig (6.0): EADDRNOTAVAIL for adapter 63: no queue of it bound to vfio_ap',
    '#2 matrix features':
      'matrixFeatures (6.12): no matrix features',
    '#22 base-0 parsing: octal 010 and +0X1f':
      'dynamicConfig (6.0): EADDRNOTAVAIL for domain 8: no queue of it bound to vfio_ap',
    '#25 reserving adapter 5 for the host while mdevs use it: EBUSY, logged for the newest overlapping mdev only':
      'dynamicConfig (6.0): no vfio_ap in-use check on mask writes',
    '#26 giving adapter 4 to vfio_ap is never refused; its queues bind to vfio_ap, unassigned':
      'queueStatus (5.17): no queue status',
    '#29 aqmask: reserving a domain in use by a fresh mdev is EBUSY':
      'dynamicConfig (6.0): no vfio_ap in-use check on mask writes',
    '#30 ap_config of U1':
      'apConfig (6.10): no ap_config',
    '#31 ap_config write replaces all three masks':
      'apConfig (6.10): no ap_config',
    '#32 ap_config adding a domain owned by U2: EADDRINUSE, U1 unchanged':
      'apConfig (6.10): no ap_config',
    '#33 ap_config: adapter 64 while host-owned is EADDRNOTAVAIL':
      'apConfig (6.10): no ap_config',
    '#33 ap_config: out-of-range adapter is ENODEV, but sharing is checked first':
      'apConfig (6.10): no ap_config',
    '#34 ap_config field splitting':
      'apConfig (6.10): no ap_config',
    '#36/#37 without a guest: unbind drops the whole adapter from guest_matrix, bind brings it back':
      'dynamicConfig (6.0): no guest_matrix',
    '#38 all adapters filtered: guest_matrix keeps the domain-only form':
      'dynamicConfig (6.0): no guest_matrix',
    '#39 over-provisioned domain: in matrix, filtered from guest_matrix':
      'dynamicConfig (6.0): EADDRNOTAVAIL for domain 0x10: no queue of it bound to vfio_ap (no over-provisioning)',
    '#43 matrix output is capped at 4095 bytes':
      'dynamicConfig (6.0): EADDRNOTAVAIL for adapters without a queue bound to vfio_ap',
    '#44 remove: 0 is a no-op, garbage is EINVAL, 1 removes everything':
      'queueStatus (5.17): no queue status',
    '#8 a fresh mdev has empty matrix, guest_matrix, control_domains and zero ap_config':
      'dynamicConfig (6.0): no guest_matrix; apConfig (6.10): no ap_config',
    'ap-check live modify: ap_config with three full masks and a newline':
      'apConfig (6.10): no ap_config',
    'mdevctl start: create without newline, attributes written at once without newline, then list and stop':
      'dynamicConfig (6.0): EADDRNOTAVAIL for domain 0x0b: no queue of it bound to vfio_ap (no over-provisioning); no guest_matrix',
    'vfio-ap.rst example: three guests sharing adapters 5 and 6':
      'queueStatus (5.17): no queue status; dynamicConfig (6.0): no sharing log, no in-use check on apmask, no guest_matrix; apConfig (6.10): no ap_config',
    'a second mount on a live apsim mount is refused with a clear message':
      'scansAndBindings (5.12): reads bus/ap/bindings as its sample attribute',
    'a stale mount (daemon and watchdog SIGKILLed) is reported and cleaned by the next mount':
      'scansAndBindings (5.12): reads bus/ap/bindings as its sample attribute',
    'access(2) follows DAC with root override, as on sysfs: -r and -w yes, -x no':
      'scansAndBindings (5.12): tests access(2) on bus/ap/bindings',
    'after SIGKILL, the next mount at the same directory works (auto_unmount)':
      'scansAndBindings (5.12): reads bus/ap/bindings as its sample attribute',
    'dd bs=1, head -c, wc -c and node read the same bytes as cat':
      'scansAndBindings (5.12): reads bus/ap/bindings as its sample attribute',
    'ls lists (with d_type) and find traverses the whole tree':
      'scansAndBindings (5.12): expects bus/ap/bindings in the listing',
    'stat: attributes are 4096-byte regular files with kernel modes, dirs 755, links 777, all root-owned':
      'scansAndBindings (5.12): stats bus/ap/bindings'
  }
}

// ---------------------------------------------------------------------------------------

type Register = (...args: unknown[]) => unknown
interface Macro { exec: (...a: unknown[]) => unknown, title?: (provided: string | undefined, ...a: unknown[]) => string | undefined }

/** The title ava gives a test (parse-test-args.js: the macro's title function, trimmed, blanks collapsed). */
function titleOf (args: unknown[]): string | undefined {
  const raw = typeof args[0] === 'string' ? args[0] : undefined
  const rest = raw === undefined ? args : args.slice(1)
  const impl = rest[0] as Partial<Macro> | undefined
  const value = (typeof impl === 'object' && impl !== null ? impl.title?.(raw, ...rest.slice(1)) : undefined) ?? raw
  return typeof value === 'string' ? value.trim().replaceAll(/\s+/g, ' ') : undefined
}

/**
 * `register(...args)` (ava's `test` or `test.serial`), or `failing(...)` with the reason
 * logged first when the title is an expected difference of this profile.
 */
function expecting (register: Register, failing: Register, differences: Record<string, string>): Register {
  return (...args: unknown[]) => {
    const title = titleOf(args)
    const reason = title === undefined ? undefined : differences[title]
    if (reason === undefined) return register(...args)
    const rest = typeof args[0] === 'string' ? args.slice(1) : args
    const impl = rest[0] as Macro | ((...a: unknown[]) => unknown)
    const exec = typeof impl === 'function' ? impl : impl.exec
    return failing(title, async (t: { log: (...v: unknown[]) => void }, ...a: unknown[]) => {
      t.log(`expected to fail under kernel ${KERNEL}: ${reason}`)
      await exec(t, ...a)
    }, ...rest.slice(1))
  }
}

function wrap (): TestFn {
  const differences = EXPECTED_DIFFERENCES[KERNEL]
  if (KERNEL === 'newest' || differences === undefined) return avaTest
  const t = avaTest as unknown as Register & { serial: Register & { failing: Register }, failing: Register }
  const serial = new Proxy(avaTest.serial, {
    apply: (_f, _this, args: unknown[]) => expecting(t.serial, t.serial.failing, differences)(...args)
  })
  return new Proxy(avaTest, {
    apply: (_f, _this, args: unknown[]) => expecting(t, t.failing, differences)(...args),
    get: (target, prop, receiver) => prop === 'serial' ? serial : Reflect.get(target, prop, receiver)
  })
}

/** ava's `test`, with this profile's expected differences registered as `test.failing`. */
export const test: TestFn = wrap()
export default test
