"""The phase agents: the tool-use loop, its tools and sandbox, and the providers that run jobs."""
