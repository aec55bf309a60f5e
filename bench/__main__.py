"""Run every benchmark."""

from bench import auth, outbox

if __name__ == "__main__":
    outbox.main()
    auth.main()
