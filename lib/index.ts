/**
 * The library API (`import { Host, loadTopology, SysfsError } from 'apsim'`): a simulated
 * host in-process, with no mount and no daemon. This file is the package's only entry point;
 * every other module is private and may change without notice.
 */
export { Host, type HostOptions, type HostState } from './host.js'
export { type GuestInfo, type LparCommand, parseLparCommands } from './control.js'
export { SysfsError, type Errno } from './errors.js'
export type { KlogRecord, Uevent } from './events.js'
export { PROFILE_NAMES } from './profiles.js'
export {
  ADAPTER_TYPES, DEFAULT_TOPOLOGY_YAML, defaultTopology, loadTopology, topologyFrom, TopologyError,
  type AdapterMode, type AdapterSpec, type Topology
} from './topology.js'
