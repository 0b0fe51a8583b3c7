/** How to get each tool this action needs on the server: one line per tool, used by every message. */

export const INSTALL_INCUS_SIMPLESTREAMS =
  'Install the incus-extra package (Debian 12 from bookworm-backports, Debian 13, Ubuntu 24.04 and later).';

export const INSTALL_FLOCK = 'Install util-linux.';

export const INSTALL_XDELTA3 = 'Install xdelta3 (apt install xdelta3 on Debian and Ubuntu).';
