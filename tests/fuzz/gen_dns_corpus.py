#!/usr/bin/python3
"""Writes the seed corpus of fuzz_dns_response: realistic replies to "example.com <type>"
with name compression (dnspython's to_wire), one per record type the presentation code
knows, plus rcodes, CNAME chains, truncation and EDNS. Run with Debian's python3 (it has
dnspython):  /usr/bin/python3 tests/fuzz/gen_dns_corpus.py tests/fuzz/corpus/fuzz_dns_response
"""
import os
import sys

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

QNAME = "example.com."

ANSWERS = {
    "a": ("A", ["192.0.2.1", "192.0.2.2", "198.51.100.7"]),
    "aaaa": ("AAAA", ["2001:db8::1", "::ffff:192.0.2.1"]),
    "mx": ("MX", ["10 mail.example.com.", "20 MX2.Example.COM.", "0 ."]),
    "ns": ("NS", ["ns1.example.com.", "ns2.example.net."]),
    "txt": ("TXT", ['"v=spf1 include:_spf.example.com -all"',
                    '"<script>alert(\\"x\\")</script>" "\\001\\255 tail"', '""']),
    "spf": ("SPF", ['"v=spf1 -all"']),
    "soa": ("SOA", ["ns1.example.com. hostmaster.example.com. 2024010101 7200 3600 1209600 300"]),
    "caa": ("CAA", ['0 issue "letsencrypt.org"', '128 iodef "mailto:sec@example.com"']),
    "srv": ("SRV", ["10 60 5060 sip.example.com."]),
    "naptr": ("NAPTR", ['100 10 "U" "E2U+sip" "!^.*$!sip:info@example.com!" .']),
    "ds": ("DS", ["12345 13 2 " + "ab" * 32]),
    "dnskey": ("DNSKEY", ["257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ=="]),
    "tlsa": ("TLSA", ["3 1 1 " + "cd" * 32]),
    "sshfp": ("SSHFP", ["4 2 " + "ef" * 32]),
    "hinfo": ("HINFO", ['"INTEL-386" "Linux"']),
    "https": ("HTTPS", ['1 . alpn="h2,h3" ipv4hint=192.0.2.1 ech=AEX+DQBB ipv6hint=2001:db8::1',
                        "0 pool.svc.example.com."]),
    "svcb": ("SVCB", ['2 svc.example.net. mandatory=alpn alpn="h2" port=8443 key65000="x"']),
    "loc": ("LOC", ["52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m"]),
    "ptr": ("PTR", ["host.example.com."]),
    "unknown": ("TYPE65280", ["\\# 4 0a000001"]),
}


def reply(rtype, rcode=dns.rcode.NOERROR, edns=True):
    q = dns.message.make_query(QNAME, rtype, use_edns=edns, payload=1232)
    q.id = 0x4242
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    return r


def main(out):
    os.makedirs(out, exist_ok=True)
    seeds = {}
    for name, (rtype, values) in ANSWERS.items():
        r = reply(rtype)
        r.answer.append(dns.rrset.from_text_list(QNAME, 300, "IN", rtype, values))
        seeds[name] = r.to_wire()

    r = reply("A")
    r.answer.append(dns.rrset.from_text(QNAME, 300, "IN", "CNAME", "www.example.com."))
    r.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", "CNAME", "cdn.example.net."))
    r.answer.append(dns.rrset.from_text("cdn.example.net.", 60, "IN", "A", "203.0.113.5"))
    seeds["cname_chain"] = r.to_wire()

    r = reply("A")
    r.answer.append(dns.rrset.from_text(QNAME, 300, "IN", "DNAME", "example.net."))
    seeds["dname"] = r.to_wire()

    r = reply("A", dns.rcode.NXDOMAIN)
    r.authority.append(dns.rrset.from_text(
        "com.", 900, "IN", "SOA", "a.gtld-servers.net. nstld.verisign-grs.com. 1 1800 900 604800 86400"))
    seeds["nxdomain"] = r.to_wire()

    seeds["servfail"] = reply("A", dns.rcode.SERVFAIL).to_wire()
    seeds["refused_noedns"] = reply("MX", dns.rcode.REFUSED, edns=False).to_wire()

    r = reply("TXT")
    r.flags |= dns.flags.TC
    seeds["truncated"] = r.to_wire()

    r = reply("NS")
    r.authority.append(dns.rrset.from_text_list(QNAME, 172800, "IN", "NS",
                                                ["ns1.example.com.", "ns2.example.com."]))
    r.additional.append(dns.rrset.from_text("ns1.example.com.", 172800, "IN", "A", "192.0.2.53"))
    seeds["referral_glue"] = r.to_wire()

    # Empty replies: NODATA with the zone's SOA (authoritative, recursive), and what is not
    # an answer: a referral to the root, a lame reply, an authoritative one without SOA.
    soa = dns.rrset.from_text(
        QNAME, 300, "IN", "SOA", "ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 300")
    r = reply("AAAA")
    r.flags |= dns.flags.AA
    r.authority.append(soa)
    seeds["nodata_aa_soa"] = r.to_wire()
    r = reply("AAAA")
    r.flags |= dns.flags.RA
    r.authority.append(soa)
    seeds["nodata_ra_soa"] = r.to_wire()
    r = reply("AAAA")
    r.flags |= dns.flags.AA
    seeds["nodata_aa_no_soa"] = r.to_wire()
    r = reply("A")
    r.authority.append(dns.rrset.from_text_list(".", 518400, "IN", "NS",
                                                ["a.root-servers.net.", "b.root-servers.net."]))
    seeds["referral_root"] = r.to_wire()
    seeds["lame_empty"] = reply("MX", edns=False).to_wire()
    r = reply("A", dns.rcode.NXDOMAIN)
    r.flags &= ~dns.flags.RA
    seeds["nxdomain_not_authoritative"] = r.to_wire()

    # EDNS refused: FORMERR without a question, BADVERS in the OPT record.
    r = reply("A", dns.rcode.FORMERR, edns=False)
    r.question = []
    seeds["formerr_no_question"] = r.to_wire()
    r = reply("A")
    r.set_rcode(dns.rcode.BADVERS)
    seeds["badvers"] = r.to_wire()

    # 0x20: the question echoed in mixed case, owners in another case.
    q = dns.message.make_query("ExAmPlE.cOm.", "A", use_edns=True, payload=1232)
    q.id = 0x4242
    r = dns.message.make_response(q)
    r.flags |= dns.flags.AA
    r.answer.append(dns.rrset.from_text("EXAMPLE.com.", 300, "IN", "A", "192.0.2.20"))
    seeds["mixed_case"] = r.to_wire()

    for name, wire in sorted(seeds.items()):
        with open(os.path.join(out, name + ".bin"), "wb") as f:
            f.write(wire)
    print(f"wrote {len(seeds)} seeds to {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus/fuzz_dns_response")
