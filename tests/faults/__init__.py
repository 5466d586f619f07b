"""The fault suite (`make faults`): scenarios that crash, stop and restart the parts of a
running pipeline under load and check that no input is lost or counted twice."""
