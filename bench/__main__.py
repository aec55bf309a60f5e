"""Run every benchmark."""

from bench import analytics, auth, outbox

if __name__ == "__main__":
    outbox.main()
    auth.main()
    analytics.main()
