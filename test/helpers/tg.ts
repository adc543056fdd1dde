/**
 * Fixture TG of vfio-ap.md §9.1 (the kernel documentation's example): the shell commands that
 * configure its three guests' mdevs, run inside each mdev's directory, and U1's matrix.
 */
export const TG_CONFIG = {
  U1: ['echo 5 > assign_adapter', 'echo 6 > assign_adapter', 'echo 4 > assign_domain', 'echo 0xab > assign_domain'],
  U2: ['echo 5 > assign_adapter', 'echo 0x47 > assign_domain', 'echo 0xff > assign_domain'],
  U3: ['echo 6 > assign_adapter', 'echo 0x47 > assign_domain', 'echo 0xff > assign_domain']
}

export const U1_MATRIX = '05.0004\n05.00ab\n06.0004\n06.00ab\n'
