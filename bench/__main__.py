"""Run every benchmark."""

from bench import analytics, auth, catalog, checkout, memory, outbox

if __name__ == "__main__":
    outbox.main()
    auth.main()
    checkout.main()
    analytics.main()
    catalog.main()
    memory.main()
