/**
 * Kernel profiles: the AP bus and vfio_ap behaviour of each kernel generation, as named sets
 * of feature switches. This table is the only place a behaviour difference is declared; the
 * model asks `profile.<switch>`.
 */

export interface Switches {
  scansAndBindings: boolean
  maskChangeUevents: boolean
  chkstopAndMaxMsgSize: boolean
  apFeatures64: boolean
  boolEnableDisable: boolean
  driverOverride: boolean
  maxKnownType: number
  removeBlocks: boolean
  queueStatus: boolean
  dynamicConfig: boolean
  exhaustedEusers: boolean
  removeRequestLog: boolean
  filterWholeMatrix: boolean
  passableDeconfigured: boolean
  apConfig: boolean
  matrixFeatures: boolean
  newLogWording: boolean
  ueventStoreRc: boolean
  zcdnAdmask: boolean
}

/** What each switch means, as `apsim profiles` explains it. */
export const SWITCH_DOCS: Record<keyof Switches, string> = {
  scansAndBindings: '5.12: `bus/ap/scans` and `bindings`, the INITSCAN and BINDINGS uevents.',
  maskChangeUevents: '≈5.12: a mask write equal to the mask is skipped; changes send APMASK/AQMASK uevents.',
  chkstopAndMaxMsgSize: '≈6.1: card and queue `chkstop`, card `max_msg_size`.',
  apFeatures64: "6.4: `bus/ap/features`, queue `ap_functions`, the card's `ap_functions` without bind-state bits, a Secure Execution guest's `se_bind`/`se_associate`, kstrtobool/kstrtoul for poll_thread/poll_timeout (0 accepted).",
  boolEnableDisable: '≈6.16: the boolean parser also takes e/E (enable) and d/D (disable).',
  driverOverride: '6.19: queue `driver_override`, its exclusion with the masks, `bindings_complete_count`, and the in-use check against all 256 ids of the other mask.',
  maxKnownType: 'The newest card type the kernel knows: 13 (CEX7) before CEX8 support, else 14.',
  removeBlocks: '5.15: `remove` of an mdev a guest holds blocks until released (before: EBUSY).',
  queueStatus: '5.17: queue `status`.',
  dynamicConfig: '6.0: dynamic configuration — guest_matrix, hot plug, over-provisioning (EADDRNOTAVAIL = host-owned), filtering, the in-use check on mask writes, no-op re-assign, sharing logged; before it every assign/unassign is EBUSY while a guest is attached and EADDRNOTAVAIL means "not bound to vfio_ap".',
  exhaustedEusers: '6.1: running out of mdev instances is EUSERS (before: EPERM).',
  removeRequestLog: '≈6.5: a blocked `remove` logs the device request lines.',
  filterWholeMatrix: "6.8: `status` says `in use` only for queues in the guest view; the filter covers the whole matrix and filtered adapters' queues are reset.",
  passableDeconfigured: '6.9: deconfigured and checkstopped reset results keep an adapter in the guest view.',
  apConfig: '6.10: mdev `ap_config`.',
  matrixFeatures: '6.12: `/sys/devices/vfio_ap/matrix/features`.',
  newLogWording: '6.15: the reworded sharing / in-use log lines; a blocked `remove` takes the AP resources from the guest at once.',
  ueventStoreRc: "6.1: a device's refused `uevent` write logs the error code (`uevent: failed to send synthetic uevent: -22`).",
  zcdnAdmask: '≈6.4 (between the 6.0 and 6.8 profiles): zcrypt device nodes have `admask`, the control domains a node may address.'
}

export interface KernelProfile extends Switches {
  name: string
  summary: string
}

const k510: KernelProfile = {
  name: '5.10',
  summary: 'static vfio_ap configuration (before the dynamic-configuration series)',
  scansAndBindings: false,
  maskChangeUevents: false,
  chkstopAndMaxMsgSize: false,
  apFeatures64: false,
  boolEnableDisable: false,
  driverOverride: false,
  maxKnownType: 13,
  removeBlocks: false,
  queueStatus: false,
  dynamicConfig: false,
  exhaustedEusers: false,
  removeRequestLog: false,
  filterWholeMatrix: false,
  passableDeconfigured: false,
  apConfig: false,
  matrixFeatures: false,
  newLogWording: false,
  ueventStoreRc: false,
  zcdnAdmask: false
}

const k60: KernelProfile = {
  ...k510,
  name: '6.0',
  summary: 'dynamic configuration merged: guest_matrix, hot plug, over-provisioning, in-use EBUSY on mask writes, filtering of the assigned APID/APQI only',
  scansAndBindings: true,
  maskChangeUevents: true,
  maxKnownType: 14,
  removeBlocks: true,
  queueStatus: true,
  dynamicConfig: true
}

const k68: KernelProfile = {
  ...k60,
  name: '6.8',
  summary: 'whole-matrix filtering, status "in use" only in the guest view, EUSERS, AP bus features and chkstop',
  chkstopAndMaxMsgSize: true,
  apFeatures64: true,
  exhaustedEusers: true,
  removeRequestLog: true,
  filterWholeMatrix: true,
  ueventStoreRc: true,
  zcdnAdmask: true
}

const k610: KernelProfile = {
  ...k68,
  name: '6.10',
  summary: 'ap_config; deconfigured/checkstopped queues stay passable (6.9)',
  passableDeconfigured: true,
  apConfig: true
}

const k612: KernelProfile = {
  ...k610,
  name: '6.12',
  summary: 'matrix device features file',
  matrixFeatures: true
}

const newest: KernelProfile = {
  ...k612,
  name: 'newest',
  summary: 'everything in the spec: 6.15 log wording, 6.16 enable/disable booleans, 6.19 driver_override, bindings_complete_count and the all-ones in-use rule',
  boolEnableDisable: true,
  driverOverride: true,
  newLogWording: true
}

/** Oldest first. */
export const PROFILES: readonly KernelProfile[] = [k510, k60, k68, k610, k612, newest]
export const PROFILE_NAMES = PROFILES.map(p => p.name)

export function profile (name: string): KernelProfile | undefined {
  return PROFILES.find(p => p.name === name)
}

export const NEWEST = newest

/** The switches in which a profile differs from the one before it. */
export function changesFrom (p: KernelProfile): Array<{ switch: keyof Switches, from: unknown, to: unknown, means: string }> {
  const i = PROFILES.indexOf(p)
  if (i <= 0) return []
  const prev = PROFILES[i - 1]
  return (Object.keys(p) as Array<keyof KernelProfile>)
    .filter((k): k is keyof Switches => k !== 'name' && k !== 'summary' && p[k] !== prev[k])
    .map(k => ({ switch: k, from: prev[k], to: p[k], means: SWITCH_DOCS[k] }))
}
