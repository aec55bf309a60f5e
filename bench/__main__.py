"""Run every benchmark."""

from bench import auth, catalog, outbox

if __name__ == "__main__":
    outbox.main()
    auth.main()
    catalog.main()
