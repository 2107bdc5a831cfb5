//! Helpers for the end-to-end tests: isolated daemon instances, throwaway packages, OSSEC inputs.
