#!/bin/sh
set -eE
# Log an active response failure by default
trap "log_failure" EXIT
ACTION="${1}"
USER="${2}"
IP="${3}"
ALERTID="${4}"
RULEID="${5}"
# The location of the active response logfile
ACTIVE_RESPONSE_LOG="/var/ossec/logs/active-responses.log"
# The maximum number of file verifiers to run at any given time
# Without this, on a large update, there's a serious risk of a local resource exhaustion DoS,
# as package database lookups can be expensive
MAX_VERIFIERS=50
HOSTNAME="${$(/bin/hostname -f 2>/dev/null):-unknown}"
SUBJECT="OSSEC Notification - ${HOSTNAME} - File Verification Alert"
log_active_response() {
local action="${1:-${ACTION}}"
echo "$(date) ${0} ${action} ${USER} ${IP} ${ALERTID} ${RULEID}" >> ${ACTIVE_RESPONSE_LOG}
trap - EXIT
exit ${2:-253}
}
log_failure() {
log_active_response failed 255
}
send_alert() {
local sender="ossec@${HOSTNAME}"
local recipients="foo@example.com,bar@example.com"
local additional="${1}\n"
local alert="${2:-Failed to verify file change status against package database.\n\nAlert ID: ${ALERTID}\nAction: ${ACTION}\nUser: ${USER}}"
/bin/echo -e "From: ${sender}
To: ${recipients}
Subject: ${SUBJECT}
${additional}
${alert}" | /usr/sbin/sendmail -oi -t
# Make sure we can trust the binaries we've just used (we're kinda screwed on grep and echo)
echo "${additional}" | grep -q " /usr/sbin/sendmail " && log_failure
echo "${additional}" | grep -q " $(/usr/bin/realpath /usr/sbin/sendmail) " && log_failure
echo "${additional}" | grep -q " /usr/bin/realpath " && log_failure
log_active_response succeeded 0
}
verify_file() {
test -n "${1}" || send_alert "verify_file: No filename provided for source package identification."
local fn="${1}"
# Obtain the package name for the file
# If using RPMs, you can skip this part, and jump right to file verification with 'rpm -f <filename>'
local pkgn="$(/usr/bin/dpkg -S ${fn} 2>/dev/null | cut -d: -f1)"
# dpkg --verify pretty much always returns 0, so we need to examine its output to determine success/failure
# Basically, if it has output, we have failure. But this verifies the whole package, so we need to look for just
# the file in question.
# If using rpm, you'll need to sort out its error codes / output here
# Note that at least dpkg doesn't verify configuration files
local verification="$(/usr/bin/dpkg --verify "${pkgn}" 2>&1 | egrep "[[:space:]]${fn}\$")"
test -z "${verification}" || send_alert "CRITICAL: Changed file '${fn}' failed package verification for '${pkgn}':\n${verification}" "${ALERT}"
}
test -z "${ALERTID}" && send_alert "No alert ID was provided; unable to determine the impacted file."
ALERT="$(/bin/sed -n "/${ALERTID}: /,/^$/p" "/var/ossec/logs/alerts/alerts.log")"
test -n "${ALERT}" || send_alert "Unable to identify the originating alert based on the alert ID '${ALERTID}'."
INSTANCE_COUNT=$(ps auxw | egrep "${0}" | grep -v grep | wc -l)
test ${INSTANCE_COUNT} -gt ${MAX_VERIFIERS} && send_alert "Too many file verifiers running." "${ALERT}"
CHANGED_FILE="$(echo "${ALERT}" | /usr/bin/awk "BEGIN {FS=\"'\"} ; /^Integrity checksum changed for: |File '.*' was re-added.$|New file '.*' added to the file system.$/ {print \$2}")"
test -n "${CHANGED_FILE}" || send_alert "Unable to identify the changed file." "${ALERT}"
test -e "${CHANGED_FILE}" || send_alert "Changed file does not appear to exist." "${ALERT}"
# Always raise an alert for stuff in certain portions of the filesystem
echo "${CHANGED_FILE}" | egrep -q '^\/(etc|home|root|boot|var\/ossec)\/' && send_alert "File changed in sensitive area of filesystem." "${ALERT}"
verify_file "${CHANGED_FILE}"
# Special handling for files upon which this script depends
# You'll want to add anything else in here that you use
for fn in "/bin/echo" "/usr/sbin/sendmail" "/bin/sed" "/usr/bin/awk" "/usr/bin/dpkg" "/usr/bin/realpath"
do
rfn="$(/usr/bin/realpath "${fn}")"
test "${CHANGED_FILE}" = "${fn}" && send_alert "Verifications depends on '${fn}' which has been updated, but passes verification." "${ALERT}"
test "${rfn}" = "${CHANGED_FILE}" && send_alert "Verification depends on '${fn}', which resolves to '${rfn}', which has been updated, but passes verification." "${ALERT}"
done
# Looks like the file checked out. Success!
log_active_response succeeded 0
# This should never happen
exit 127
