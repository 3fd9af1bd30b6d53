#!/bin/sh
# Test stand-in for the commands the role runs on a node (kubelet stop and start, the containerd
# restart): appends its arguments as one line to the log file named first, so that
# scripts/ansible-test.sh can tell which ran, in which order.
# Usage: record.sh LOG WORD...
log=$1
shift
printf '%s\n' "$*" >>"$log"
