import { useEffect, useId, useRef, useState, type KeyboardEvent, type Ref } from 'react';

export interface MenuItem {
  label: string;
  onSelect(): void;
  /** Destructive (shown in red). */
  danger?: boolean;
}

/**
 * The "Message actions" menu button (the WAI-ARIA menu button pattern): arrow keys, Home and End move
 * between items, Escape closes the menu and gives focus back to the button, Tab or a click elsewhere
 * closes it.
 */
export function MessageMenu({ items, buttonRef }: { items: MenuItem[]; buttonRef?: Ref<HTMLButtonElement> }) {
  const [open, setOpen] = useState(false);
  // Which item takes focus when the menu opens: the first, or the last (opened with ArrowUp).
  const [initial, setInitial] = useState<'first' | 'last'>('first');
  // Opens towards the larger part of the list's view, so that the header or composer do not cover it.
  const [downwards, setDownwards] = useState(false);
  const id = useId();
  const wrapper = useRef<HTMLDivElement>(null);
  const button = useRef<HTMLButtonElement | null>(null);
  const itemRefs = useRef<(HTMLButtonElement | null)[]>([]);

  useEffect(() => {
    if (!open) return;
    itemRefs.current[initial === 'first' ? 0 : items.length - 1]?.focus();
    const onPointerDown = (e: PointerEvent) => {
      if (!wrapper.current?.contains(e.target as Node)) setOpen(false);
    };
    document.addEventListener('pointerdown', onPointerDown);
    return () => document.removeEventListener('pointerdown', onPointerDown);
  }, [open, initial, items.length]);

  const close = (refocus: boolean) => {
    setOpen(false);
    if (refocus) button.current?.focus();
  };

  const show = (at: 'first' | 'last') => {
    const el = button.current;
    if (el) {
      const view = el.closest('.scroller')?.getBoundingClientRect() ?? { top: 0, bottom: window.innerHeight };
      const rect = el.getBoundingClientRect();
      setDownwards(rect.top - view.top < view.bottom - rect.bottom);
    }
    setInitial(at);
    setOpen(true);
  };

  function onButtonKeyDown(e: KeyboardEvent) {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      show(e.key === 'ArrowDown' ? 'first' : 'last');
    }
  }

  function onMenuKeyDown(e: KeyboardEvent) {
    const buttons = itemRefs.current.filter((b): b is HTMLButtonElement => b !== null);
    const at = buttons.indexOf(document.activeElement as HTMLButtonElement);
    const focus = (i: number) => buttons[(i + buttons.length) % buttons.length]?.focus();
    switch (e.key) {
      case 'Escape':
        e.preventDefault();
        e.stopPropagation();
        close(true);
        break;
      case 'ArrowDown':
        e.preventDefault();
        focus(at + 1);
        break;
      case 'ArrowUp':
        e.preventDefault();
        focus(at - 1);
        break;
      case 'Home':
        e.preventDefault();
        focus(0);
        break;
      case 'End':
        e.preventDefault();
        focus(buttons.length - 1);
        break;
      case 'Tab':
        close(false);
        break;
    }
  }

  return (
    <div className="msg-menu" ref={wrapper}>
      <button
        type="button"
        className="msg-menu__button"
        ref={(el) => {
          button.current = el;
          if (typeof buttonRef === 'function') buttonRef(el);
          else if (buttonRef) buttonRef.current = el;
        }}
        aria-label="Message actions"
        aria-haspopup="menu"
        aria-expanded={open}
        aria-controls={open ? id : undefined}
        onClick={() => (open ? close(false) : show('first'))}
        onKeyDown={onButtonKeyDown}
      >
        <span aria-hidden="true">⋯</span>
      </button>
      {open && (
        <div className={`msg-menu__list ${downwards ? 'msg-menu__list--down' : ''}`} role="menu" id={id} aria-label="Message actions" onKeyDown={onMenuKeyDown}>
          {items.map((item, i) => (
            <button
              key={item.label}
              type="button"
              role="menuitem"
              tabIndex={-1}
              className={`msg-menu__item ${item.danger ? 'msg-menu__item--danger' : ''}`}
              ref={(el) => {
                itemRefs.current[i] = el;
              }}
              onClick={() => {
                close(true);
                item.onSelect();
              }}
            >
              {item.label}
            </button>
          ))}
        </div>
      )}
    </div>
  );
}
