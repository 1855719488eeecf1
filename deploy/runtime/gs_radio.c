/* A part of the generated policy.c: the exporter copies this file into it without its #include lines. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "policy.h"

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

int gs_radio_pack(int sender, int step, int row, int col, int valid, const float *message,
                  unsigned char packets[GS_RADIO_PACKETS][GS_RADIO_PACKET_MAX], int *lengths)
{
    float peak = 0.0f;
    int total = 0;
    for (int i = 0; i < GS_MESSAGE_SIZE; ++i)
        if (fabsf(message[i]) > peak) peak = fabsf(message[i]);
    const float scale = peak > 0.0f ? peak / 127.0f : 1.0f;
    for (int fragment = 0; fragment < GS_RADIO_PACKETS; ++fragment) {
        unsigned char *packet = packets[fragment];
        const int start = fragment * GS_RADIO_VALUES_PER_PACKET, count = gs_radio_count(fragment);
        packet[0] = 1;
        packet[1] = (unsigned char)sender;
        packet[2] = (unsigned char)(step & 0xFF);
        packet[3] = (unsigned char)((step >> 8) & 0xFF);
        packet[4] = (unsigned char)row;
        packet[5] = (unsigned char)col;
        packet[6] = (unsigned char)((valid ? 1 : 0) | (fragment << 4));
        memcpy(packet + 7, &scale, 4);
        for (int k = 0; k < count; ++k) {
            float q = rintf(message[start + k] / scale);
            q = q > 127.0f ? 127.0f : (q < -127.0f ? -127.0f : q);
            packet[11 + k] = (unsigned char)(signed char)(int)q;
        }
        const uint16_t crc = gs_crc16(packet, 11 + count);
        packet[11 + count] = (unsigned char)(crc & 0xFF);
        packet[12 + count] = (unsigned char)(crc >> 8);
        lengths[fragment] = 13 + count;
        total += lengths[fragment];
    }
    return total;
}

int gs_radio_unpack(const unsigned char packets[GS_RADIO_PACKETS][GS_RADIO_PACKET_MAX],
                    const int *lengths, int *sender, int *step, int *row, int *col, int *valid,
                    float *message)
{
    for (int fragment = 0; fragment < GS_RADIO_PACKETS; ++fragment) {
        const unsigned char *packet = packets[fragment];
        const int start = fragment * GS_RADIO_VALUES_PER_PACKET, count = gs_radio_count(fragment);
        float scale;
        if (lengths[fragment] != 13 + count || packet[0] != 1 || (packet[6] >> 4) != fragment) return -1;
        if ((packet[11 + count] | (packet[12 + count] << 8)) != gs_crc16(packet, 11 + count)) return -1;
        memcpy(&scale, packet + 7, 4);
        for (int k = 0; k < count; ++k)
            message[start + k] = (float)(signed char)packet[11 + k] * scale;
    }
    *sender = packets[0][1];
    *step = packets[0][2] | (packets[0][3] << 8);
    *row = packets[0][4];
    *col = packets[0][5];
    *valid = packets[0][6] & 1;
    return 0;
}
