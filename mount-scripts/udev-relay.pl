#!/usr/bin/perl
# udev-relay.pl SOCKET HOST_NETNS
#
# Broadcasts the simulated host's udev events to the "udev" netlink group of the network
# namespace it runs in, as udevd does, so libudev listeners (libvirt, udevadm monitor --udev,
# pyudev) hear of devices as they come and go. apsim-ns.sh starts it inside the private network
# namespace it made; HOST_NETNS (`net:[N]` of the namespace apsim was started from) is refused,
# so simulated devices never reach the host's own listeners.
#
# SOCKET is the daemon's udev feed: frames of a 4-byte big-endian length and a libudev message,
# the first one empty (subscribed); the relay answers a byte for each message it broadcast. Once subscribed, loopback is up and the netlink socket
# bound, the relay forks: the parent prints the relay's pid and exits 0; the relay goes on until
# the feed closes or it is killed. Exit 1 with a reason on stderr if any of that fails.
#
# perl-base only (Essential on every Debian and Ubuntu): Socket, no compiler, no JSON.
use strict;
use warnings;
use POSIX ();
use Socket qw(AF_INET AF_UNIX SOCK_DGRAM SOCK_RAW SOCK_STREAM MSG_DONTWAIT pack_sockaddr_un);

# The relay outlives its caller: it must not hold the caller's pipes open (apsim run waits for
# one to close), so every inherited descriptor but the standard three goes.
opendir my $fds, '/proc/self/fd' or die "udev-relay: /proc/self/fd: $!\n";
my @inherited = grep { /^\d+$/ && $_ > 2 } readdir $fds;
closedir $fds;
POSIX::close($_) for @inherited;

my ($feed, $host_netns) = @ARGV;
sub fail { print STDERR "udev-relay: @_\n"; exit 1 }
defined $host_netns or fail 'usage: udev-relay.pl SOCKET HOST_NETNS';

my $netns = readlink '/proc/self/ns/net' or fail "cannot read /proc/self/ns/net: $!";
$netns ne $host_netns or fail "refusing to relay in the network namespace apsim was started from ($netns)";

use constant {
  AF_NETLINK => 16,
  NETLINK_KOBJECT_UEVENT => 15,
  UDEV_GROUP => 2,
  SIOCGIFFLAGS => 0x8913,
  SIOCSIFFLAGS => 0x8914,
  IFF_UP => 0x1,
};

# Loopback up, as a namespace made for a command should have it (no iproute2 needed).
socket(my $inet, AF_INET, SOCK_DGRAM, 0) or fail "socket(AF_INET): $!";
my $ifr = pack 'a16 x24', 'lo';
ioctl($inet, SIOCGIFFLAGS, $ifr) or fail "SIOCGIFFLAGS lo: $!";
my $flags = unpack 'x16 s', $ifr;
ioctl($inet, SIOCSIFFLAGS, pack('a16 s x22', 'lo', $flags | IFF_UP)) or fail "cannot bring lo up: $!";
close $inet;

socket(my $nl, AF_NETLINK, SOCK_RAW, NETLINK_KOBJECT_UEVENT) or fail "socket(AF_NETLINK): $!";
bind($nl, pack('S x2 L L', AF_NETLINK, 0, 0)) or fail "bind(AF_NETLINK): $!";
my $dest = pack 'S x2 L L', AF_NETLINK, 0, UDEV_GROUP;

socket(my $in, AF_UNIX, SOCK_STREAM, 0) or fail "socket(AF_UNIX): $!";
connect($in, pack_sockaddr_un($feed)) or fail "cannot connect to the udev feed $feed: $!";

sub readn {
  my ($n) = @_;
  my $buf = '';
  while (length $buf < $n) {
    my $got = sysread $in, $buf, $n - length $buf, length $buf;
    return undef if !$got;
  }
  return $buf;
}

my $hello = readn(4);
defined $hello && unpack('N', $hello) == 0 or fail "the udev feed $feed did not subscribe the relay";

my $pid = fork;
defined $pid or fail "fork: $!";
if ($pid) { print "$pid\n"; exit 0 }

# Nor the caller's standard streams: whoever reads them waits for their end.
open STDIN, '<', '/dev/null';
open STDOUT, '>', '/dev/null';
open STDERR, '>', '/dev/null';
$SIG{TERM} = $SIG{INT} = $SIG{HUP} = sub { exit 0 };
while (defined(my $len = readn(4))) {
  my $msg = readn(unpack 'N', $len);
  last if !defined $msg;
  # Never blocks; ECONNREFUSED (no kernel receiver for the group) is what udevd gets too.
  send $nl, $msg, MSG_DONTWAIT, $dest;
  syswrite $in, "\n" or last;
}
exit 0;
