#!/usr/bin/perl
# mkmmdb.pl OUT -- writes a tiny MaxMind DB (GeoIP2-City-like: location.latitude/longitude)
use strict; use warnings;
use MaxMind::DB::Writer::Tree;
my %types = (location => 'map', latitude => 'double', longitude => 'double');
my $t = MaxMind::DB::Writer::Tree->new(
    ip_version => 6, record_size => 24, database_type => 'minicdn-test', languages => ['en'],
    description => { en => 'minicdn test db' }, map_key_type_callback => sub { $types{ $_[0] } },
    alias_ipv6_to_ipv4 => 1, remove_reserved_networks => 0,
);
$t->insert_network('127.0.8.0/24', { location => { latitude => 38.9, longitude => -77.0 } });   # Washington: us
$t->insert_network('127.0.9.0/24', { location => { latitude => 1.3, longitude => 103.9 } });    # Singapore: ap
$t->insert_network('198.51.100.0/22', { location => { latitude => 48.1, longitude => 11.6 } }); # Munich: eu
$t->insert_network('2001:db8:9::/48', { location => { latitude => -33.9, longitude => 151.2 } }); # Sydney: nearest ap
open my $fh, '>:raw', $ARGV[0] or die "$ARGV[0]: $!";
$t->write_tree($fh);
close $fh;
