"""Operations: the management commands that prepare the service and run it on one machine."""
