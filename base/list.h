/* Intrusive doubly linked list with a sentinel head (libuv's queue and PgBouncer's lists work the
 * same way): an object can sit on several lists through several embedded nodes, and removal is
 * O(1). */
#ifndef SL_BASE_LIST_H
#define SL_BASE_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct sl_list {
    struct sl_list *prev, *next;
};

#define sl_container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void sl_list_init(struct sl_list *l)
{
    l->prev = l->next = l;
}
static inline bool sl_list_empty(const struct sl_list *l)
{
    return l->next == l;
}
/* A node that was initialised or removed is "unlinked"; linked nodes never point at themselves. */
static inline bool sl_list_linked(const struct sl_list *n)
{
    return n->next != n;
}
static inline void sl_list_push_back(struct sl_list *head, struct sl_list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
static inline void sl_list_push_front(struct sl_list *head, struct sl_list *n)
{
    n->next = head->next;
    n->prev = head;
    head->next->prev = n;
    head->next = n;
}
static inline void sl_list_remove(struct sl_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}
static inline struct sl_list *sl_list_first(const struct sl_list *head)
{
    return sl_list_empty(head) ? NULL : head->next;
}

#define sl_list_for_each_safe(pos, tmp, head)                                                      \
    for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);                               \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif
