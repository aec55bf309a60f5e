"""Run every benchmark."""

from bench import analytics, auth, catalog, checkout, member, outbox

if __name__ == "__main__":
    outbox.main()
    auth.main()
    checkout.main()
    analytics.main()
    catalog.main()
    member.main()
