//! OSSEC and Wazuh Active Response formats: syscheck alerts (alerts.log, alerts.json), the argv and
//! stdin an AR program receives, and the AR log lines the stock decoders parse.
