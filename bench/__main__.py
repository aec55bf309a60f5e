"""Run every benchmark."""

from bench import analytics, auth, catalog, catalog_cpu, checkout, checkout_cpu, member, memory, outbox

if __name__ == "__main__":
    outbox.main()
    auth.main()
    checkout.main()
    checkout_cpu.main()
    member.main()
    analytics.main()
    catalog.main()
    catalog_cpu.main()
    memory.main()
