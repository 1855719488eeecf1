/* A part of the generated policy.c: the exporter copies this file into it without its #include lines. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "policy.h"

/* The radio message of deploy/radio.py (layout in manifest.json "radio"). Little-endian targets only
   (Cortex-M4 and x86): the scale is copied as its in-memory bytes. */
static uint16_t gs_crc16(const unsigned char *data, int size)
{
    uint16_t crc = 0xFFFF;
    for (int i = 0; i < size; ++i) {
        crc = (uint16_t)(crc ^ (data[i] << 8));
        for (int bit = 0; bit < 8; ++bit)
            crc = (uint16_t)((crc & 0x8000) ? ((crc << 1) ^ 0x1021) : (crc << 1));
    }
    return crc;
}

static int gs_radio_count(int fragment)
{
    const int left = GS_MESSAGE_SIZE - fragment * GS_RADIO_VALUES_PER_PACKET;
    return left < GS_RADIO_VALUES_PER_PACKET ? left : GS_RADIO_VALUES_PER_PACKET;
}

/* int8 * scale is a finite float for every int8 in [-127, 127]: scale finite, positive, 127 * scale finite */
static int gs_radio_scale_ok(float scale)
{
    return scale > 0.0f && isfinite(scale * 127.0f);
}

static void gs_put16(unsigned char *at, int value)
{
    at[0] = (unsigned char)(value & 0xFF);
    at[1] = (unsigned char)((value >> 8) & 0xFF);
}

static int gs_get16(const unsigned char *at)
{
    return at[0] | (at[1] << 8);
}

int gs_radio_pack(int sender, int step, int row, int col, int valid, const float *message,
                  unsigned char packets[GS_RADIO_PACKETS][GS_RADIO_PACKET_MAX], int *lengths)
{
    float peak = 0.0f;
    int total = 0, fragment;
    for (fragment = 0; fragment < GS_RADIO_PACKETS; ++fragment) lengths[fragment] = 0;
    if (sender < 0 || sender > GS_RADIO_FIELD_MAX || row < 0 || row > GS_RADIO_FIELD_MAX || col < 0 ||
        col > GS_RADIO_FIELD_MAX)
        return -1;
    for (int i = 0; i < GS_MESSAGE_SIZE; ++i) {
        if (!isfinite(message[i])) return -1;
        if (fabsf(message[i]) > peak) peak = fabsf(message[i]);
    }
    const float scale = peak > 0.0f ? peak / 127.0f : 1.0f;
    if (!gs_radio_scale_ok(scale)) return -1;
    for (fragment = 0; fragment < GS_RADIO_PACKETS; ++fragment) {
        unsigned char *packet = packets[fragment];
        const int start = fragment * GS_RADIO_VALUES_PER_PACKET, count = gs_radio_count(fragment);
        packet[0] = GS_RADIO_VERSION;
        gs_put16(packet + 1, sender);
        gs_put16(packet + 3, step & 0xFFFF);
        gs_put16(packet + 5, row);
        gs_put16(packet + 7, col);
        packet[9] = (unsigned char)((valid ? 1 : 0) | (fragment << 4));
        memcpy(packet + 10, &scale, 4);
        for (int k = 0; k < count; ++k) {
            float q = rintf(message[start + k] / scale);
            q = q > 127.0f ? 127.0f : (q < -127.0f ? -127.0f : q);
            packet[GS_RADIO_HEADER + k] = (unsigned char)(signed char)(int)q;
        }
        const uint16_t crc = gs_crc16(packet, GS_RADIO_HEADER + count);
        gs_put16(packet + GS_RADIO_HEADER + count, crc);
        lengths[fragment] = GS_RADIO_HEADER + count + 2;
        total += lengths[fragment];
    }
    return total;
}

int gs_radio_unpack(const unsigned char packets[GS_RADIO_PACKETS][GS_RADIO_PACKET_MAX],
                    const int *lengths, int *sender, int *step, int *row, int *col, int *valid,
                    float *message)
{
    int fragment;
    for (fragment = 0; fragment < GS_RADIO_PACKETS; ++fragment) {
        const unsigned char *packet = packets[fragment];
        const int count = gs_radio_count(fragment);
        float scale;
        if (lengths[fragment] != GS_RADIO_HEADER + count + 2 || packet[0] != GS_RADIO_VERSION ||
            (packet[9] >> 4) != fragment)
            return -1;
        if (gs_get16(packet + GS_RADIO_HEADER + count) != gs_crc16(packet, GS_RADIO_HEADER + count)) return -1;
        memcpy(&scale, packet + 10, 4);
        if (!gs_radio_scale_ok(scale)) return -1;
    }
    for (fragment = 0; fragment < GS_RADIO_PACKETS; ++fragment) {
        const unsigned char *packet = packets[fragment];
        const int start = fragment * GS_RADIO_VALUES_PER_PACKET, count = gs_radio_count(fragment);
        float scale;
        memcpy(&scale, packet + 10, 4);
        for (int k = 0; k < count; ++k)
            message[start + k] = (float)(signed char)packet[GS_RADIO_HEADER + k] * scale;
    }
    *sender = gs_get16(packets[0] + 1);
    *step = gs_get16(packets[0] + 3);
    *row = gs_get16(packets[0] + 5);
    *col = gs_get16(packets[0] + 7);
    *valid = packets[0][9] & 1;
    return 0;
}
