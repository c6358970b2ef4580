"""`python -m services`: starts the whole suite behind the Envoy edge."""

from services.launcher import main

if __name__ == "__main__":
    main()
