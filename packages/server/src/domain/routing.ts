/** A subscription matches a message by topic, and by tag when it lists tags. */
export function matches(subscription: { topic: string; tags: readonly string[] | null }, message: { topic: string; tag: string | null }): boolean {
  if (subscription.topic !== message.topic) return false;
  if (subscription.tags === null) return true;
  return message.tag !== null && subscription.tags.includes(message.tag);
}
