/* include/core/list.h: intrusive doubly linked lists, the one way objects here keep
 * their live siblings (connections, streams, calls). A node holds its own prev/next
 * fields; the macros name them, so one node may sit in several lists. */
#ifndef VA_CORE_LIST_H
#define VA_CORE_LIST_H

/* Puts node at the front of the list headed by head. */
#define VA_LIST_PUSH(head, node, prev, next)                                                       \
    do {                                                                                           \
        (node)->prev = NULL;                                                                       \
        (node)->next = (head);                                                                     \
        if (head)                                                                                  \
            (head)->prev = (node);                                                                 \
        (head) = (node);                                                                           \
    } while (0)

/* Takes node out of the list headed by head (node must be in it). node's own links are
 * left as they were, so a walk that saved nothing may still step past it. */
#define VA_LIST_REMOVE(head, node, prev, next)                                                     \
    do {                                                                                           \
        if ((node)->prev)                                                                          \
            (node)->prev->next = (node)->next;                                                     \
        else                                                                                       \
            (head) = (node)->next;                                                                 \
        if ((node)->next)                                                                          \
            (node)->next->prev = (node)->prev;                                                     \
    } while (0)

#endif
