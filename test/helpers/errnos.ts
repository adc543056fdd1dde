/**
 * Which errnos a store may return, per file, as the specs document them
 * (/work/shared/spec/ap-bus.md §1–§3, §5; vfio-ap.md §1–§5 and §7; README's control plane).
 * The property test of the model and the fuzzer of the mount both check every refusal
 * against this table: an errno outside a file's set is a bug, whatever the input was.
 *
 * Paths are relative to the mount root (where `/sys` would be). Errors of the open itself
 * (ENOENT once an mdev or device is gone, EACCES for a file without write bits) are not part
 * of a file's store set; `openErrnos` lists them.
 */
import type { Errno } from '../../lib/errors.js'
import type { KernelProfile } from '../../lib/profiles.js'

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
const CARD = 'card[0-9a-f]{2}'
const QUEUE = '[0-9a-f]{2}\\.[0-9a-f]{4}'
const DEV = `devices/ap/${CARD}(?:/${QUEUE})?`
const MDEV = `devices/vfio_ap/matrix/${UUID}`

type Rule = [RegExp, (p: KernelProfile) => Errno[]]

const always = (...e: Errno[]) => (): Errno[] => e
/** Before 6.0 every assignment store of an mdev a guest holds is EBUSY (vfio-ap.md §7). */
const staticBusy = (...e: Errno[]) => (p: KernelProfile): Errno[] => p.dynamicConfig ? e : [...e, 'EBUSY']

const RULES: Rule[] = [
  // ap-bus.md §1.3, §1.4 (EINTR only on a signal while waiting for the lock: not simulated)
  [/^bus\/ap\/(apmask|aqmask)$/, always('EINVAL', 'EBUSY')],
  [/^bus\/ap\/(ap_domain|config_time|poll_thread)$/, always('EINVAL')],
  [/^bus\/ap\/poll_timeout$/, always('EINVAL', 'ERANGE')],
  [/^bus\/ap\/(scans|drivers_autoprobe)$/, always()],
  // drivers/base/bus.c drivers_probe_store: ENODEV for an unknown name, EINVAL when the attach fails
  [/^bus\/(ap|matrix|mdev)\/drivers_probe$/, always('ENODEV', 'EINVAL')],
  [/^bus\/(matrix|mdev)\/drivers_autoprobe$/, always()],
  // ap-bus.md §3.3: bind ENODEV (no such device, gate refused) / EBUSY (bound); unbind ENODEV
  [/^bus\/ap\/drivers\/[^/]+\/bind$/, always('ENODEV', 'EBUSY')],
  [/^bus\/ap\/drivers\/[^/]+\/unbind$/, always('ENODEV')],
  // kobject_synth_uevent: EINVAL for an unknown action or a bad variable
  [/(^|\/)uevent$/, always('EINVAL')],
  [/\/power\/control$/, always('EINVAL')],
  // ap-bus.md §2.2, §5.1: config EINVAL; EOPNOTSUPP without the SCLP facility (z/VM, KVM)
  [new RegExp(`^${DEV}/request_count$`), always()],
  [new RegExp(`^devices/ap/${CARD}/config$`), always('EINVAL', 'EOPNOTSUPP')],
  // §2.3, §2.5: online EINVAL (not 0/1, card offline) / ENODEV (deconfigured, checkstopped)
  [new RegExp(`^${DEV}/online$`), always('EINVAL', 'ENODEV')],
  [new RegExp(`^devices/ap/${CARD}/${QUEUE}/reset$`), always()],
  // §2.4 (6.19): masks in use, a page or more
  [new RegExp(`^devices/ap/${CARD}/${QUEUE}/driver_override$`), always('EINVAL')],
  // ap_queue.c (Secure Execution guests): se_bind EINVAL/EIO/EBUSY; se_associate also ERANGE (kstrtouint)
  [new RegExp(`^devices/ap/${CARD}/${QUEUE}/se_bind$`), always('EINVAL', 'EIO', 'EBUSY')],
  [new RegExp(`^devices/ap/${CARD}/${QUEUE}/se_associate$`), always('EINVAL', 'ERANGE', 'EIO', 'EBUSY')],
  // zcrypt_api.c: zcdn_create EEXIST/ENOSPC (EINVAL: "." and ".."), zcdn_destroy ENOENT, the masks' grammar EINVAL
  [/^class\/zcrypt\/create$/, always('EEXIST', 'ENOSPC', 'EINVAL')],
  [/^class\/zcrypt\/destroy$/, always('ENOENT')],
  [/^devices\/virtual\/zcrypt\/[^/]+\/(ioctlmask|apmask|aqmask|admask)$/, always('EINVAL')],
  // vfio-ap.md §1.3: create EINVAL / EEXIST / EUSERS (EPERM before 6.1)
  [/^devices\/vfio_ap\/matrix\/mdev_supported_types\/vfio_ap-passthrough\/create$/, p => ['EINVAL', 'EEXIST', p.exhaustedEusers ? 'EUSERS' : 'EPERM']],
  // §2.2–§2.7
  [new RegExp(`^${MDEV}/assign_(adapter|domain)$`), staticBusy('EINVAL', 'ERANGE', 'ENODEV', 'EADDRNOTAVAIL', 'EADDRINUSE')],
  [new RegExp(`^${MDEV}/assign_control_domain$`), staticBusy('EINVAL', 'ERANGE', 'ENODEV')],
  [new RegExp(`^${MDEV}/unassign_(adapter|domain|control_domain)$`), staticBusy('EINVAL', 'ERANGE', 'ENODEV')],
  // §5.2
  [new RegExp(`^${MDEV}/ap_config$`), always('EINVAL', 'EADDRNOTAVAIL', 'EADDRINUSE', 'ENODEV', 'ENOMEM')],
  // §2.10: EINVAL; EBUSY while a guest holds it before 5.15 (later it blocks)
  [new RegExp(`^${MDEV}/remove$`), p => p.removeBlocks ? ['EINVAL'] : ['EINVAL', 'EBUSY']],
  // README, the control plane
  [/^kernel\/debug\/apsim\/lpar$/, always('EINVAL', 'EEXIST', 'ENOENT', 'ENODEV')],
  [/^kernel\/debug\/apsim\/guests$/, always('EINVAL', 'ENODEV', 'EBUSY', 'EPERM', 'ENOENT')],
  [/^kernel\/debug\/apsim\/restore$/, always('EINVAL', 'EOPNOTSUPP', 'ELOOP')],
  [/^kernel\/debug\/apsim\/reset$/, always('EINVAL', 'EOPNOTSUPP', 'ELOOP')],
  // lib/faults.ts: a malformed rule (a valid one injects errnos on purpose: the fuzzer never forms one)
  [/^kernel\/debug\/apsim\/faults$/, always('EINVAL')]
]

/** The errnos a store to `path` may fail with under `profile`; undefined for a file the table does not know. */
export function storeErrnos (path: string, profile: KernelProfile): ReadonlySet<Errno> | undefined {
  // A guest's own sysfs (README, guests) has the files of the AP bus, with the same errnos.
  const p = path.replace(/^\/+/, '').replace(/^kernel\/debug\/apsim\/guest\/[^/]+\/sys\//, '')
  for (const [re, errnos] of RULES) if (re.test(p)) return new Set(errnos(profile))
  return undefined
}

/** Errors of opening a file for writing: gone (ENOENT: a removed mdev, an unbound driver attribute) or not writable (EACCES). */
export const openErrnos: ReadonlySet<Errno> = new Set(['ENOENT', 'EACCES'])
