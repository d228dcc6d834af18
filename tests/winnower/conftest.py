"""The cluster tests' real Kafka broker (one per session) for the agent and monitor tests."""

from tests.cluster.conftest import broker  # noqa: F401 - a fixture
