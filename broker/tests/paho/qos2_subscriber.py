"""A persistent QoS 2 subscriber on Eclipse Paho, for the durability test that kills the broker
while it receives (`tests/durability.rs`): connects as CLIENT_ID with clean session false to a
session that already holds its subscription, reconnects by itself whenever the broker goes away,
and prints the first word of each message Paho hands over, one per line. Paho keeps the packet
ids of QoS 2 messages PUBREC'd and not yet released across reconnections and hands a message over
on its PUBREL, once per id: what it prints twice, the broker delivered twice.

Usage: python3 qos2_subscriber.py PORT CLIENT_ID
"""

import sys

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def main():
    port, client_id = int(sys.argv[1]), sys.argv[2]
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        protocol=mqtt.MQTTv311,
    )
    client.reconnect_delay_set(min_delay=1, max_delay=1)

    def on_message(_client, _userdata, message):
        print(message.payload.split(b" ")[0].decode(), flush=True)

    client.on_message = on_message
    client.connect_async("127.0.0.1", port, keepalive=30)
    client.loop_forever(retry_first_connection=True)


if __name__ == "__main__":
    main()
