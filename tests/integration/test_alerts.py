

def test_check_failing_after_n_failed_scans_and_once_on_recovery(domainmon_factory,
                                                                 receiver_factory):
    # A Knot of this test's own: stopping it makes every scan fail.
    k = Knot({"alerts.test.": ALERTS_ZONE})
    try:
        k.start()
        hook = receiver_factory()
        m = domainmon_factory(env=alert_env(k))
        api = Api(m)
        name = "w4.alerts.test"
        api.add(name)
        api.wait_checked(name)
        rule = create_rule(m, {"name": "failing", "channel": "webhook", "target": hook.url(),
                               "secret": SECRET, "events": ["check.failing"], "failing_scans": 3,
                               "domains": [name]})
        k.stop()

        def failed_scans():
            d = api.domain(name)
            return d["status"] == "error"

        wait_for(failed_scans, timeout=30, what="a failed scan")
        wait_for(hook.delivered, timeout=40, what="check.failing after three failed scans")
        # Further failures say nothing more.
        t = api.checked_at(name)
        api.wait_scans(name, 2) if hasattr(api, "wait_scans") else api.wait_checked(name, after=t)
        settle(2)
        (first,) = hook.snapshot()
        doc = json.loads(first["body"])
        assert signature_ok(SECRET, first["headers"], first["body"])
        assert doc["type"] == "check.failing"
        assert doc["data"]["domain"] == name and doc["data"]["state"] == "failing"
        assert doc["data"]["failed_scans"] == 3 and doc["data"]["error"]

        k.start()
        wait_for(lambda: len(hook.delivered()) == 2, timeout=40, what="the recovery")
        settle(3)
        reqs = hook.snapshot()
        assert len(reqs) == 2
        rec = json.loads(reqs[1]["body"])
        assert rec["type"] == "check.failing" and rec["data"]["state"] == "recovered"
        assert rec["data"]["failed_scans"] >= 3
        ds = deliveries(m, rule["id"])
        assert len(ds) == 2 and all(d["status"] == "delivered" for d in ds)
    finally:
        k.cleanup()


AMQP_URL = os.environ.get("DM_TEST_AMQP_URL")


@pytest.mark.skipif(not AMQP_URL or not os.environ.get("DM_TEST_PG_URL"),
                    reason="DM_TEST_AMQP_URL and DM_TEST_PG_URL are not both set")
def test_two_alert_services_on_postgres_and_rabbitmq_send_each_alert_once(
        domainmon_factory, knot, receiver_factory):
    from test_amqp import bus_url, busctl

    # The alert queue's name is fixed; a previous test's exchange may still be bound to it.
    p = busctl(AMQP_URL, "delete", "dns.scan", "delete", "dns.scan.dead",
               "delete", "domainmon.alerts")
    assert p.returncode == 0, p.stderr
    hook = receiver_factory(fail_first=1)
    env = {**alert_env(knot), "RABBITMQ_URL": bus_url("alerts")}
    m = domainmon_factory(env=env, args=("domain-service",), database="postgres")
    api = Api(m)
    scanner = domainmon_factory(env=env, args=("dns-service",), database_url=m.database_url)
    senders = [domainmon_factory(env=env, args=("alert-service",), database_url=m.database_url)
               for _ in range(2)]
    for s in (scanner, *senders):
        wait_for(lambda s=s: "bus=amqp" in s.stderr_text(), timeout=20, what="the start line")
    names = ["w5.alerts.test", "w6.alerts.test"]
    for n in names:
        api.add(n)
    for n in names:
        api.wait_checked(n, timeout=30)
    rule = create_rule(m, {"name": "hook", "channel": "webhook", "target": hook.url(),
                           "secret": SECRET, "events": ["change.dns.A"], "domains": names})

    change_a(knot, names[0], "192.0.2.5", "192.0.2.205")
    wait_for(lambda: len(hook.delivered()) == 1, timeout=40, what="the first alert")
    change_a(knot, names[1], "192.0.2.6", "192.0.2.206")
    wait_for(lambda: len(hook.delivered()) == 2, timeout=40, what="the second alert")
    settle(4)
    reqs = hook.snapshot()
    assert [r["status"] for r in reqs] == [500, 200, 200]
    assert reqs[0]["headers"]["webhook-id"] == reqs[1]["headers"]["webhook-id"]
    domains = [json.loads(r["body"])["data"]["domain"] for r in reqs[1:]]
    assert domains == names
    assert all(signature_ok(SECRET, r["headers"], r["body"]) for r in reqs)
    ds = deliveries(m, rule["id"])
    assert sorted(d["attempts"] for d in ds) == [1, 2]
    assert all(d["status"] == "delivered" for d in ds)
