"""Run every benchmark."""

from bench import analytics, auth, catalog, checkout, checkout_cpu, member, memory, outbox

if __name__ == "__main__":
    outbox.main()
    auth.main()
    checkout.main()
    checkout_cpu.main()
    member.main()
    analytics.main()
    catalog.main()
    memory.main()
